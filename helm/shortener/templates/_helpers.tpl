{{/*
Names. Kubernetes names are DNS labels: at most 63 characters, and the longest
suffix added below is "-create-headless" (16), hence the 47 for the base name.
*/}}
{{- define "shortener.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 47 | trimSuffix "-" }}
{{- end }}

{{- define "shortener.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 47 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 47 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 47 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "shortener.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "shortener.labels" -}}
helm.sh/chart: {{ include "shortener.chart" . }}
app.kubernetes.io/name: {{ include "shortener.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shortener
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: dict "root" $ "component" "lookup". */}}
{{- define "shortener.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shortener.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "shortener.componentLabels" -}}
{{ include "shortener.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "shortener.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "shortener.secretName" -}}
{{- default (include "shortener.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/*
The short-link base URL: the configured one, else the first Ingress host (https
when that host has TLS), else nothing and the service default applies.
*/}}
{{- define "shortener.publicBaseUrl" -}}
{{- $configured := dig "http" "public_base_url" "" .Values.config }}
{{- if $configured }}
{{- $configured }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- $host := first .Values.ingress.hosts }}
{{- $tls := false }}
{{- range (include "shortener.ingressTls" . | fromYamlArray) }}
{{- if has $host (default list .hosts) }}{{ $tls = true }}{{ end }}
{{- end }}
{{- printf "%s://%s" (ternary "https" "http" $tls) $host }}
{{- end }}
{{- end }}

{{/*
The Ingress's TLS entries: the listed ones, plus, when cert-manager issues the
certificates, one per host that none of them covers (secret `<host>-tls`), so that
adding a branded domain to `ingress.hosts` is all its certificate needs.
*/}}
{{- define "shortener.ingressTls" -}}
{{- $entries := list }}
{{- $covered := list }}
{{- range .Values.ingress.tls }}
{{- $entries = append $entries . }}
{{- $covered = concat $covered (default list .hosts) }}
{{- end }}
{{- if dig "certManager" "clusterIssuer" "" .Values.ingress }}
{{- range .Values.ingress.hosts }}
{{- if not (has . $covered) }}
{{- $entries = append $entries (dict "hosts" (list .) "secretName" (printf "%s-tls" .)) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $entries }}
{{- end }}

{{/* One setting as an environment value: integral numbers without exponent. */}}
{{- define "shortener.envValue" -}}
{{- if kindIs "slice" . }}
{{- $items := list }}
{{- range . }}{{ $items = append $items (include "shortener.envValue" .) }}{{ end }}
{{- join "," $items }}
{{- else if and (kindIs "float64" .) (eq (floor .) .) }}
{{- int64 . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
Non-secret settings of one component as SHORTENER__SECTION__KEY: value lines,
`config` merged with the component's own `config`. Null values and empty lists
are left out, so the service default applies.
*/}}
{{- define "shortener.configEnv" -}}
{{- $root := .root }}
{{- $values := index $root.Values .component }}
{{- $merged := mergeOverwrite (deepCopy (default dict $root.Values.config)) (deepCopy (default dict $values.config)) }}
{{- $http := default dict (get $merged "http") }}
{{- $_ := unset $http "public_base_url" }}
{{- $base := include "shortener.publicBaseUrl" $root }}
{{- if $base }}{{ $_ := set $http "public_base_url" $base }}{{ end }}
{{- $_ := set $http "bind" "0.0.0.0" }}
{{- $_ := set $http "port" $values.port }}
{{- $_ := set $merged "http" $http }}
{{- range $section := keys $merged | sortAlpha }}
{{- $entries := get $merged $section }}
{{- range $key := keys $entries | sortAlpha }}
{{- $value := get $entries $key }}
{{- if not (or (kindIs "invalid" $value) (and (kindIs "slice" $value) (empty $value))) }}
{{ printf "SHORTENER__%s__%s" (upper $section) (upper $key) }}: {{ include "shortener.envValue" $value | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Environment entries read from the Secret: dict "root" $ "databaseUrlKey" "...". */}}
{{- define "shortener.secretEnv" -}}
{{- $root := .root }}
{{- $keys := $root.Values.secret.keys }}
{{- $name := include "shortener.secretName" $root }}
- name: SHORTENER__DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ default $keys.databaseUrl .databaseUrlKey }}
{{- if not .migration }}
- name: SHORTENER__IDS__CODE_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ $keys.codeKey }}
- name: SHORTENER__DATABASE__REPLICA_URLS
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ $keys.databaseReplicaUrls }}
      optional: true
- name: SHORTENER__REDIS__URLS
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ $keys.redisUrls }}
      optional: true
{{- end }}
{{- end }}

{{/* Whole seconds, rounded up, of a duration as the services read it ("20s", "1m30s",
"500ms"); the schema has already refused any other shape. */}}
{{- define "shortener.seconds" -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000 }}
{{- $ms := 0 }}
{{- range regexFindAll "[0-9]+(ms|s|m|h|d)" (toString .) -1 }}
{{- $n := regexFind "^[0-9]+" . }}
{{- $ms = add $ms (mul (int64 $n) (get $units (trimPrefix $n .))) }}
{{- end }}
{{- div (add $ms 999) 1000 }}
{{- end }}

{{/* The drain budget: see terminationGracePeriodSeconds in values.yaml. */}}
{{- define "shortener.terminationGrace" -}}
{{- $values := index .root.Values .component }}
{{- if kindIs "invalid" $values.terminationGracePeriodSeconds }}
{{- $merged := mergeOverwrite (deepCopy (default dict .root.Values.config)) (deepCopy (default dict $values.config)) }}
{{- $drain := include "shortener.seconds" (dig "http" "shutdown_timeout" "20s" $merged) }}
{{- $delay := include "shortener.seconds" (dig "http" "drain_delay" "0s" $merged) }}
{{- add (int64 $values.preStopSleepSeconds) (int64 $delay) (int64 $drain) 15 }}
{{- else }}
{{- int64 $values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* Pod topology spread over nodes and zones, preferred. */}}
{{- define "shortener.topologySpread" -}}
{{- $values := index .root.Values .component }}
{{- if $values.topologySpread }}
topologySpreadConstraints:
  {{- range list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
  - maxSkew: 1
    topologyKey: {{ . }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "shortener.selectorLabels" $ | nindent 8 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
The pod template shared by the three services: dict "root" $ "component" "lookup".
*/}}
{{- define "shortener.podTemplate" -}}
{{- $root := .root }}
{{- $component := .component }}
{{- $values := index $root.Values $component }}
metadata:
  labels:
    {{- include "shortener.componentLabels" . | nindent 4 }}
    {{- with $values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Settings reach the process only at start: roll the pods when they change.
    checksum/config: {{ include "shortener.configEnv" . | sha256sum }}
    {{- if and $root.Values.secret.create (not $root.Values.secret.existingSecret) }}
    checksum/secret: {{ toJson $root.Values.secret.values | sha256sum }}
    {{- end }}
    {{- with $values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with $root.Values.serviceAccountName }}
  serviceAccountName: {{ . }}
  {{- end }}
  automountServiceAccountToken: false
  # Settings come from SHORTENER__* variables; the per-Service variables Kubernetes
  # would add (SHORTENER_LOOKUP_PORT=tcp://...) only blur what the process reads.
  enableServiceLinks: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ include "shortener.terminationGrace" . }}
  containers:
    - name: {{ $component }}
      image: {{ include "shortener.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command:
        - /usr/local/bin/{{ $component }}-service
      ports:
        - name: http
          containerPort: {{ $values.port }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "shortener.fullname" $root }}-{{ $component }}
      env:
        {{- include "shortener.secretEnv" (dict "root" $root) | trim | nindent 8 }}
        {{- if eq $component "create" }}
        # The pod's ordinal becomes the Snowflake worker id (shortener-create-3 → 3).
        - name: SHORTENER__IDS__POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- with $values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      livenessProbe:
        {{- toYaml $values.livenessProbe | nindent 8 }}
      readinessProbe:
        {{- toYaml $values.readinessProbe | nindent 8 }}
      {{- if gt (int64 $values.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ int64 $values.preStopSleepSeconds }}
      {{- end }}
      resources:
        {{- toYaml $values.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    # The root filesystem is read-only; libraries that want a scratch file get this.
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
  {{- with include "shortener.topologySpread" . | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- with $values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Label selector of this release's metrics, for the alert and dashboard queries. */}}
{{- define "shortener.metricSelector" -}}
namespace="{{ .Release.Namespace }}", job=~"{{ include "shortener.fullname" . }}-(create|lookup|stats)"
{{- end }}
