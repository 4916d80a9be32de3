{{- define "qmk.name" -}}{{ .Release.Name }}{{- end }}
{{- define "qmk.labels" -}}
app.kubernetes.io/name: qmk
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
{{- define "qmk.selector" -}}
app.kubernetes.io/name: qmk
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: kernel
{{- end }}
{{- define "qmk.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag }}{{- end }}
{{- define "qmk.configSecret" -}}
{{- .Values.kernel.existingSecret | default (printf "%s-config" .Release.Name) -}}
{{- end }}
{{- define "qmk.daskCluster" -}}{{ .Release.Name }}-dask{{- end }}
{{- define "qmk.socketProbe" -}}
["/opt/qmk/venv/bin/python", "-c", "import socket; socket.socket(socket.AF_UNIX).connect('/run/qmk/kernel.sock')"]
{{- end }}
{{- define "qmk.scrapeSecret" -}}
{{- .Values.monitoring.scrape.existingSecret | default (printf "%s-scrape" .Release.Name) -}}
{{- end }}
