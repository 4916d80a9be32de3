"""A gateway's log lines a batch at a time (qmk.gateway.logs): info lines wait on the
event loop and are all written, in order; a warning, a line off the loop, a flush and a
close write at once. The loop's own timers order the waits, never a race with the clock."""

from __future__ import annotations

import asyncio
import io
import logging

from qmk.gateway.logs import BATCH_LINES, BatchedStreamHandler


def _logger(
    stream: io.StringIO, batch_s: float = 0.05
) -> tuple[logging.Logger, BatchedStreamHandler]:
    handler = BatchedStreamHandler(stream, batch_s)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"qmk.test.batched.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, handler


def test_info_lines_on_the_loop_wait_for_the_batch_and_are_all_written_in_order() -> None:
    stream = io.StringIO()
    logger, handler = _logger(stream)

    async def main() -> tuple[str, str]:
        logger.info("GET %s %d", "/v1/jobs/a", 200)
        logger.info("GET %s %d", "/v1/jobs/b", 200)
        before = stream.getvalue()
        await asyncio.sleep(0.2)  # a later timer than the batch's: the batch runs first
        return before, stream.getvalue()

    before, after = asyncio.run(main())
    handler.close()
    assert before == ""
    assert after == "INFO GET /v1/jobs/a 200\nINFO GET /v1/jobs/b 200\n"


def test_a_warning_writes_the_batch_before_it_at_once() -> None:
    stream = io.StringIO()
    logger, handler = _logger(stream, batch_s=3600.0)

    async def main() -> str:
        logger.info("first")
        logger.warning("second")
        return stream.getvalue()

    assert asyncio.run(main()) == "INFO first\nWARNING second\n"
    handler.close()


def test_a_line_off_the_loop_is_written_at_once_and_close_writes_what_waits() -> None:
    stream = io.StringIO()
    logger, handler = _logger(stream, batch_s=3600.0)
    logger.info("at the start")
    assert stream.getvalue() == "INFO at the start\n"

    async def main() -> None:
        logger.info("waits")

    asyncio.run(main())
    assert stream.getvalue() == "INFO at the start\n"
    handler.close()  # logging.shutdown at exit closes it
    assert stream.getvalue() == "INFO at the start\nINFO waits\n"


def test_a_full_batch_is_written_without_waiting() -> None:
    stream = io.StringIO()
    logger, handler = _logger(stream, batch_s=3600.0)

    async def main() -> str:
        for n in range(BATCH_LINES):
            logger.info("line %d", n)
        return stream.getvalue()

    written = asyncio.run(main())
    handler.close()
    assert written.splitlines() == [f"INFO line {n}" for n in range(BATCH_LINES)]
