"""The QVM program format: op table, graph values, JSON, schema, verifier, assembly."""
