{{/* The chart's name, or nameOverride. */}}
{{- define "mailtrace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: fullnameOverride, else <release>-<name>, or <release> when it already holds the name. Short enough for "-ingest-metrics". */}}
{{- define "mailtrace.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mailtrace.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mailtrace.labels" -}}
helm.sh/chart: {{ include "mailtrace.chart" . }}
app.kubernetes.io/name: {{ include "mailtrace.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mailtrace
{{- end -}}

{{/* Selector labels; a component is added by the caller. */}}
{{- define "mailtrace.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mailtrace.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mailtrace.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mailtrace.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mailtrace.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "mailtrace.embedded" -}}
{{- if eq .Values.store.type "embedded" -}}true{{- end -}}
{{- end -}}

{{/* Where the embedded store, its ingest state and (for the ingester) the state file live. */}}
{{- define "mailtrace.dataDir" -}}/var/lib/mailtrace{{- end -}}

{{/* Refuse combinations the manager or the ingester would refuse at start, with the reason. */}}
{{- define "mailtrace.validate" -}}
{{- $v := .Values -}}
{{- if and (eq $v.store.type "embedded") (gt (int $v.manager.replicas) 1) -}}
{{- fail "manager.replicas > 1 needs store.type=postgres: the embedded SQLite store lives on one ReadWriteOnce volume" -}}
{{- end -}}
{{- if and (eq $v.store.type "postgres") (not $v.store.postgres.existingSecret) -}}
{{- fail "store.type=postgres needs store.postgres.existingSecret: a Secret holding the DSN under store.postgres.dsnKey" -}}
{{- end -}}
{{- if $v.ingest.enabled -}}
{{- if not (or $v.ingest.syslogTCP.enabled $v.ingest.syslogUDP.enabled $v.ingest.http.enabled) -}}
{{- fail "ingest.enabled needs a listener: ingest.syslogTCP, ingest.syslogUDP or ingest.http" -}}
{{- end -}}
{{- if and $v.ingest.tls.clientCAKey (not $v.ingest.tls.secretName) -}}
{{- fail "ingest.tls.clientCAKey needs ingest.tls.secretName (the server certificate)" -}}
{{- end -}}
{{- if not $v.ingest.insecureNoAuth -}}
{{- if and $v.ingest.http.enabled (not $v.ingest.token.existingSecret) (not $v.ingest.tls.clientCAKey) -}}
{{- fail "ingest.http needs sender authentication: set ingest.token.existingSecret (a bearer token) or ingest.tls.secretName with ingest.tls.clientCAKey, or ingest.insecureNoAuth=true on a trusted network" -}}
{{- end -}}
{{- if and $v.ingest.syslogTCP.enabled (not $v.ingest.tls.clientCAKey) -}}
{{- fail "ingest.syslogTCP authenticates senders by client certificate only: set ingest.tls.secretName and ingest.tls.clientCAKey, or ingest.insecureNoAuth=true on a trusted network" -}}
{{- end -}}
{{- if $v.ingest.syslogUDP.enabled -}}
{{- fail "ingest.syslogUDP cannot authenticate senders: set ingest.insecureNoAuth=true to accept it from a trusted network" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.reports.defaultStore.caBundle.configMapName $v.reports.defaultStore.caBundle.secretName -}}
{{- fail "reports.defaultStore.caBundle: set configMapName or secretName, not both" -}}
{{- end -}}
{{- end -}}

{{/*
The ingest flags, shared by the manager (prefix "ingest-") and the ingester (prefix "").
Call with (dict "root" $ "prefix" "ingest-").
*/}}
{{- define "mailtrace.ingestArgs" -}}
{{- $p := .prefix -}}
{{- $i := .root.Values.ingest -}}
- --{{ $p }}syslog-tcp={{ if $i.syslogTCP.enabled }}:{{ $i.syslogTCP.port }}{{ end }}
- --{{ $p }}syslog-udp={{ if $i.syslogUDP.enabled }}:{{ $i.syslogUDP.port }}{{ end }}
- --{{ $p }}http={{ if $i.http.enabled }}:{{ $i.http.port }}{{ end }}
{{- if $i.tls.secretName }}
- --{{ $p }}tls-cert=/etc/mailtrace/ingest-tls/tls.crt
- --{{ $p }}tls-key=/etc/mailtrace/ingest-tls/tls.key
{{- if $i.tls.clientCAKey }}
- --{{ $p }}tls-client-ca=/etc/mailtrace/ingest-tls/{{ $i.tls.clientCAKey }}
{{- end }}
{{- end }}
{{- if $i.token.existingSecret }}
- --{{ $p }}token-file=/etc/mailtrace/ingest-token/token
{{- end }}
{{- if $i.insecureNoAuth }}
- --{{ $p }}insecure-no-auth
{{- end }}
{{- range $i.acceptedDomains }}
- --{{ $p }}accepted-domain={{ . }}
{{- end }}
{{- range $i.contentFilters }}
- --{{ $p }}content-filter={{ . }}
{{- end }}
{{- with $i.timezone }}
- --{{ $p }}timezone={{ . }}
{{- end }}
{{- with $i.linkWait }}
- --{{ $p }}link-wait={{ . }}
{{- end }}
{{- range $i.internalNetworks }}
- --{{ $p }}internal-network={{ . }}
{{- end }}
{{- with $i.pendingAfter }}
- --{{ $p }}pending-after={{ . }}
{{- end }}
- --{{ $p }}state-file={{ include "mailtrace.dataDir" .root }}/ingest-state.json
- --{{ $p }}wal-max-bytes={{ int64 $i.walMaxBytes }}
- --{{ $p }}lines-per-second={{ $i.linesPerSecond }}
- --{{ $p }}max-line-bytes={{ int64 $i.maxLineBytes }}
- --{{ $p }}max-request-bytes={{ int64 $i.maxRequestBytes }}
- --{{ $p }}max-connections={{ int64 $i.maxConnections }}
- --{{ $p }}max-connections-per-ip={{ int64 $i.maxConnectionsPerIP }}
- --{{ $p }}max-messages-in-flight={{ int64 $i.maxMessagesInFlight }}
{{- end -}}

{{/* The ingest container ports. */}}
{{- define "mailtrace.ingestPorts" -}}
{{- $i := .Values.ingest -}}
{{- if $i.syslogTCP.enabled }}
- name: syslog-tcp
  containerPort: {{ $i.syslogTCP.port }}
  protocol: TCP
{{- end }}
{{- if $i.syslogUDP.enabled }}
- name: syslog-udp
  containerPort: {{ $i.syslogUDP.port }}
  protocol: UDP
{{- end }}
{{- if $i.http.enabled }}
- name: ingest-http
  containerPort: {{ $i.http.port }}
  protocol: TCP
{{- end }}
{{- end -}}

{{/* The ingest volume mounts and volumes (TLS and token Secrets). */}}
{{- define "mailtrace.ingestMounts" -}}
{{- $i := .Values.ingest -}}
{{- if $i.tls.secretName }}
- name: ingest-tls
  mountPath: /etc/mailtrace/ingest-tls
  readOnly: true
{{- end }}
{{- if $i.token.existingSecret }}
- name: ingest-token
  mountPath: /etc/mailtrace/ingest-token
  readOnly: true
{{- end }}
{{- end -}}

{{- define "mailtrace.ingestVolumes" -}}
{{- $i := .Values.ingest -}}
{{- if $i.tls.secretName }}
- name: ingest-tls
  secret:
    secretName: {{ $i.tls.secretName }}
{{- end }}
{{- if $i.token.existingSecret }}
- name: ingest-token
  secret:
    secretName: {{ $i.token.existingSecret }}
    items:
      - key: {{ $i.token.key }}
        path: token
{{- end }}
{{- end -}}

{{/* MAILTRACE_STORE from the DSN Secret (PostgreSQL). */}}
{{- define "mailtrace.storeEnv" -}}
{{- if eq .Values.store.type "postgres" }}
- name: MAILTRACE_STORE
  valueFrom:
    secretKeyRef:
      name: {{ .Values.store.postgres.existingSecret }}
      key: {{ .Values.store.postgres.dsnKey }}
{{- end }}
{{- end -}}
