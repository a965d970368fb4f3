#!/usr/bin/env bash
# Validates deploy/: Prometheus rules and config with promtool (plus rule unit
# tests), Kubernetes manifests (deploy/k8s and the PgBouncer variant
# deploy/k8s-pgbouncer) and the compose files (YAML parse + structure;
# kubeconform when installed or installable from Debian), and the Grafana
# dashboard (JSON parse + structure). Also checks that alerts and dashboard use
# only metrics that exist (crates/worker/src/metrics.rs, the admin side's
# metrics declared in crates/admin/src, RabbitMQ's rabbitmq_prometheus plugin,
# `up`) and that every webhookd metric is on some dashboard panel. Installs
# promtool (Debian `prometheus`) and PyYAML (Debian `python3-yaml`) with
# apt-get when missing.
# Exits non-zero on any problem.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok:   $*"; }
step() { echo; echo "== $*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
apt_updated=0
apt_has_candidate() {
    # True when apt knows an installable version of package $1.
    local cand
    cand="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [ -n "$cand" ] && [ "$cand" != "(none)" ]
}
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if ! apt_has_candidate "$1" && [ "$apt_updated" -eq 0 ]; then
        $SUDO apt-get update -qq >/dev/null 2>&1 || true
        apt_updated=1
    fi
    apt_has_candidate "$1" || return 1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}

step "tools"
if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool missing: installing Debian package prometheus"
    apt_install prometheus || fail "cannot install promtool (Debian package prometheus)"
fi
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
    echo "PyYAML missing: installing Debian package python3-yaml"
    apt_install python3-yaml || fail "cannot install PyYAML (Debian package python3-yaml)"
fi
command -v promtool >/dev/null 2>&1 && ok "$(promtool --version 2>&1 | head -1)"
python3 -c 'import yaml' >/dev/null 2>&1 && ok "PyYAML $(python3 -c 'import yaml; print(yaml.__version__)')"
if [ "$failures" -ne 0 ]; then
    echo "check-deploy: $failures problem(s)" >&2
    exit 1
fi

step "promtool check rules / config"
if promtool check rules deploy/prometheus/alerts.yml; then ok "alerts.yml"; else fail "promtool check rules deploy/prometheus/alerts.yml"; fi
if promtool check config deploy/prometheus/prometheus.yml; then ok "prometheus.yml"; else fail "promtool check config deploy/prometheus/prometheus.yml"; fi

step "promtool test rules (alert unit tests)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The unit tests check when alerts fire and with which labels; annotations
# (checked for presence below) are dropped so the tests need not repeat them.
python3 - "$tmp/alerts.yml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open("deploy/prometheus/alerts.yml"))
for g in doc["groups"]:
    for r in g["rules"]:
        r.pop("annotations", None)
yaml.safe_dump(doc, open(sys.argv[1], "w"))
PY
cat > "$tmp/alerts_test.yml" <<'EOF'
rule_files:
  - alerts.yml
evaluation_interval: 1m
tests:
  # 10% of attempts fail permanently: the failure-rate alert fires.
  - interval: 1m
    input_series:
      - series: 'webhookd_deliveries_total{job="webhookd-worker",instance="w1",event="contact.created",outcome="success"}'
        values: '0+90x60'
      - series: 'webhookd_deliveries_total{job="webhookd-worker",instance="w1",event="contact.created",outcome="failed"}'
        values: '0+10x60'
      - series: 'up{job="webhookd-worker",instance="w1"}'
        values: '1x60'
    alert_rule_test:
      - eval_time: 40m
        alertname: WebhookdDeliveryFailureRateHigh
        exp_alerts:
          - exp_labels:
              severity: warning
      - eval_time: 40m
        alertname: WebhookdWorkersAbsent
        exp_alerts: []
  # No worker target at all, then one that is down.
  - interval: 1m
    input_series:
      - series: 'up{job="webhookd-worker",instance="w1"}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 10m
        alertname: WebhookdWorkerDown
        exp_alerts:
          - exp_labels:
              severity: warning
              job: webhookd-worker
              instance: w1
      - eval_time: 10m
        alertname: WebhookdWorkersAbsent
        exp_alerts:
          - exp_labels:
              severity: critical
  # Growing then stuck backlog; rejected messages; storage errors; disabled webhooks.
  - interval: 1m
    input_series:
      - series: 'rabbitmq_queue_messages_ready{queue="webhookd.events",vhost="/"}'
        values: '2000+50x120'
      - series: 'webhookd_events_rejected_total{job="webhookd-worker",instance="w1",reason="invalid_json"}'
        values: '0 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14'
      - series: 'webhookd_storage_errors_total{job="webhookd-worker",instance="w1",operation="insert_log"}'
        values: '0+1x30'
      - series: 'webhookd_webhooks_disabled_total{job="webhookd-worker",instance="w1"}'
        values: '0 0 0 1 1 1 1 1 1 1'
      - series: 'up{job="webhookd-worker",instance="w1"}'
        values: '1x120'
    alert_rule_test:
      - eval_time: 35m
        alertname: WebhookdQueueBacklogGrowing
        exp_alerts:
          - exp_labels:
              severity: warning
              queue: webhookd.events
              vhost: /
      - eval_time: 60m
        alertname: WebhookdQueueConsumerLagHigh
        exp_alerts:
          - exp_labels:
              severity: critical
              queue: webhookd.events
              vhost: /
      - eval_time: 12m
        alertname: WebhookdEventsRejected
        exp_alerts:
          - exp_labels:
              severity: warning
              reason: invalid_json
      - eval_time: 20m
        alertname: WebhookdStorageErrors
        exp_alerts:
          - exp_labels:
              severity: critical
              operation: insert_log
      - eval_time: 8m
        alertname: WebhookdWebhooksAutoDisabled
        exp_alerts:
          - exp_labels:
              severity: warning
  # A delivery pending for longer than the retry schedule lasts.
  - interval: 1m
    input_series:
      - series: 'webhookd_oldest_pending_delivery_seconds{job="webhookd-worker",instance="w1"}'
        values: '21000+60x60'
      - series: 'webhookd_oldest_pending_delivery_seconds{job="webhookd-worker",instance="w2"}'
        values: '0x60'
    alert_rule_test:
      - eval_time: 9m
        alertname: WebhookdDeliveriesOverdue
        exp_alerts: []
      - eval_time: 30m
        alertname: WebhookdDeliveriesOverdue
        exp_alerts:
          - exp_labels:
              severity: warning
  # A breaker open for 20 minutes (seen by two workers), then one that
  # closed after 5 minutes.
  - interval: 1m
    input_series:
      - series: 'webhookd_breakers_open{job="webhookd-worker",instance="w1"}'
        values: '0 0 1x30'
      - series: 'webhookd_breakers_open{job="webhookd-worker",instance="w2"}'
        values: '0 0 1x30'
    alert_rule_test:
      - eval_time: 10m
        alertname: WebhookdBreakerOpen
        exp_alerts: []
      - eval_time: 20m
        alertname: WebhookdBreakerOpen
        exp_alerts:
          - exp_labels:
              severity: warning
  - interval: 1m
    input_series:
      - series: 'webhookd_breakers_open{job="webhookd-worker",instance="w1"}'
        values: '1 1 1 1 1 0x30'
    alert_rule_test:
      - eval_time: 25m
        alertname: WebhookdBreakerOpen
        exp_alerts: []
  # Half the HTTP ingest answered 503 (the broker unreachable), on one of
  # two API processes; a worker exports the same series at 0.
  - interval: 1m
    input_series:
      - series: 'webhookd_ingest_requests_total{job="webhookd-api",instance="a1",outcome="accepted"}'
        values: '0+10x40'
      - series: 'webhookd_ingest_requests_total{job="webhookd-api",instance="a1",outcome="unavailable"}'
        values: '0x5 0+20x35'
      - series: 'webhookd_ingest_requests_total{job="webhookd-api",instance="a2",outcome="accepted"}'
        values: '0+10x40'
      - series: 'webhookd_ingest_requests_total{job="webhookd-worker",instance="w1",outcome="unavailable"}'
        values: '0x40'
    alert_rule_test:
      - eval_time: 8m
        alertname: WebhookdIngestUnavailable
        exp_alerts: []
      - eval_time: 30m
        alertname: WebhookdIngestUnavailable
        exp_alerts:
          - exp_labels:
              severity: critical
  # An occasional 503 (1 %) is not an outage.
  - interval: 1m
    input_series:
      - series: 'webhookd_ingest_requests_total{job="webhookd-api",instance="a1",outcome="accepted"}'
        values: '0+99x60'
      - series: 'webhookd_ingest_requests_total{job="webhookd-api",instance="a1",outcome="unavailable"}'
        values: '0+1x60'
    alert_rule_test:
      - eval_time: 45m
        alertname: WebhookdIngestUnavailable
        exp_alerts: []
EOF
if (cd "$tmp" && promtool test rules alerts_test.yml); then ok "alert unit tests"; else fail "promtool test rules"; fi

step "kubeconform"
if ! command -v kubeconform >/dev/null 2>&1; then
    apt_install kubeconform >/dev/null 2>&1 || true
fi
if command -v kubeconform >/dev/null 2>&1; then
    # KEDA CRDs have no built-in schema: skip them rather than fail.
    if kubeconform -strict -summary -ignore-missing-schemas \
        $(ls deploy/k8s/*.yaml | grep -v kustomization.yaml); then
        ok "kubeconform"
    else
        fail "kubeconform"
    fi
else
    echo "skip: kubeconform is not installed and not installable from Debian here; structure checks below instead"
fi

step "YAML manifests, alert rules and dashboard structure"
if python3 - <<'PY'
import glob, json, os, re, sys
import yaml

problems = []
def bad(msg):
    problems.append(msg)
    print("FAIL: " + msg, file=sys.stderr)

def load_all(path):
    try:
        with open(path) as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except Exception as e:  # parse error
        bad(f"{path}: YAML does not parse: {e}")
        return []

# --- metrics that exist ---------------------------------------------------
# The pipeline's (crates/worker/src/metrics.rs: every webhookd_ literal).
src = open("crates/worker/src/metrics.rs").read()
known = set(re.findall(r'"(webhookd_[a-z0-9_]+)"', src))
hist = set(re.findall(r'HistogramOpts::new\(\s*"(webhookd_[a-z0-9_]+)"', src))
if len(known) < 10:
    bad(f"found only {len(known)} metric names in metrics.rs")
# The admin side's (GraphQL, HTTP ingest, quotas), rendered by the same
# /metrics after the pipeline's: only names given to a metric's constructor,
# `Opts::new("webhookd_...")`, `HistogramOpts::new(...)` or
# `IntCounter::new(...)` and kin, since the admin crate has other webhookd_
# literals (cookie names). A prometheus-using file with a webhookd_ literal
# none of these reads is a metric declared some other way: fail, rather than
# leave it unchecked.
METRIC_CTOR = r'\b(?:Histogram)?Opts::new\(\s*"(webhookd_[a-z0-9_]+)"'
DIRECT_CTOR = r'\b(?:Int)?(?:Counter|Gauge|Histogram)(?:Vec)?::new\(\s*"(webhookd_[a-z0-9_]+)"'
admin = {}
for path in sorted(glob.glob("crates/admin/src/**/*.rs", recursive=True)):
    text = open(path).read()
    names = set(re.findall(METRIC_CTOR, text)) | set(re.findall(DIRECT_CTOR, text))
    hist |= set(re.findall(r'HistogramOpts::new\(\s*"(webhookd_[a-z0-9_]+)"', text))
    if "prometheus" in text:
        for lit in sorted(set(re.findall(r'"(webhookd_[a-z0-9_]+)"', text)) - names):
            bad(f"{path}: {lit!r} looks like a metric declared other than by Opts::new, HistogramOpts::new or <Type>::new; "
                "teach check-deploy.sh how it is declared")
    for n in names:
        admin.setdefault(n, path)
if len(admin) < 8:
    bad(f"found only {len(admin)} admin metric names in crates/admin/src")
print(f"ok:   {len(known)} pipeline metrics, {len(admin)} admin metrics: "
      + ", ".join(f"{n} ({os.path.relpath(p, 'crates/admin/src')})" for n, p in sorted(admin.items())))
known |= set(admin)
allowed = set(known)
for m in hist:
    allowed |= {m + "_bucket", m + "_sum", m + "_count"}
allowed |= {"rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "up"}
FUNCS = {"sum", "rate", "increase", "deriv", "histogram_quantile", "absent",
         "min_over_time", "max_over_time", "by", "without", "and", "or", "unless",
         "label_values", "on", "ignoring", "le", "bool", "irate", "avg", "max", "min",
         "count", "topk", "clamp_min", "vector", "offset"}
def check_metrics(where, expr):
    # Drop label matchers, strings and template variables, then every
    # remaining identifier that is not a function/keyword must be a metric.
    e = re.sub(r'\{[^}]*\}', '', expr)
    e = re.sub(r'"[^"]*"', '', e)
    e = re.sub(r'\$\{?\w+\}?', '', e)
    e = re.sub(r'\[[^\]]*\]', '', e)
    e = re.sub(r'by\s*\([^)]*\)', '', e)
    for ident in re.findall(r'[a-zA-Z_:][a-zA-Z0-9_:]*', e):
        if ident in FUNCS:
            continue
        if ident not in allowed:
            bad(f"{where}: unknown metric or identifier {ident!r} in: {expr.strip()}")

# --- Kubernetes manifests ---------------------------------------------------
k8s = sorted(glob.glob("deploy/k8s/*.yaml"))
if not k8s:
    bad("no manifests in deploy/k8s")
objs = {}
for path in k8s:
    docs = load_all(path)
    if not docs:
        bad(f"{path}: empty")
    for d in docs:
        if not isinstance(d, dict) or "apiVersion" not in d or "kind" not in d:
            bad(f"{path}: document without apiVersion/kind")
            continue
        if d["kind"] == "Kustomization":
            objs[("Kustomization", "kustomization")] = (path, d)
            continue
        name = (d.get("metadata") or {}).get("name")
        if not name:
            bad(f"{path}: {d['kind']} without metadata.name")
        if "namespace" in (d.get("metadata") or {}):
            bad(f"{path}: {d['kind']}/{name} sets a namespace (manifests must be namespace-less)")
        objs[(d["kind"], name)] = (path, d)
print(f"ok:   {len(k8s)} k8s files parse: " + ", ".join(f"{k}/{n}" for k, n in sorted(objs)))

def need(kind, name):
    if (kind, name) not in objs:
        bad(f"missing {kind}/{name}")
        return None
    return objs[(kind, name)][1]

cm = need("ConfigMap", "webhookd-config") or {}
sec = need("Secret", "webhookd-secrets") or {}
grace_ms = int((cm.get("data") or {}).get("WEBHOOKD__SHUTDOWN__GRACE_PERIOD_MS", "30000"))
for k in (cm.get("data") or {}):
    if not k.startswith("WEBHOOKD__"):
        bad(f"ConfigMap key {k} is not a WEBHOOKD__ variable")
    if k in ("WEBHOOKD__DATABASE__URL", "WEBHOOKD__BROKER__URL"):
        bad(f"ConfigMap holds secret {k}")
sdata = dict(sec.get("stringData") or {}, **(sec.get("data") or {}))
for k in ("WEBHOOKD__DATABASE__URL", "WEBHOOKD__BROKER__URL"):
    if k not in sdata:
        bad(f"Secret lacks {k}")

def check_pod(kind, name, spec, args, probes=True):
    where = f"{kind}/{name}"
    psc = spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        bad(f"{where}: pod securityContext.runAsNonRoot is not true")
    cs = spec.get("containers") or []
    if len(cs) != 1:
        bad(f"{where}: expected one container")
        return
    c = cs[0]
    if c.get("args") != args:
        bad(f"{where}: args {c.get('args')} != {args}")
    csc = c.get("securityContext") or {}
    if csc.get("readOnlyRootFilesystem") is not True:
        bad(f"{where}: readOnlyRootFilesystem is not true")
    if csc.get("allowPrivilegeEscalation") is not False:
        bad(f"{where}: allowPrivilegeEscalation is not false")
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in (res.get(part) or {}):
                bad(f"{where}: resources.{part}.{r} missing")
    refs = {(e.get("configMapRef") or e.get("secretRef") or {}).get("name") for e in c.get("envFrom") or []}
    if not {"webhookd-config", "webhookd-secrets"} <= refs:
        bad(f"{where}: envFrom must reference webhookd-config and webhookd-secrets")
    if probes:
        lp = ((c.get("livenessProbe") or {}).get("httpGet") or {}).get("path")
        rp = ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path")
        if lp != "/healthz":
            bad(f"{where}: livenessProbe path {lp!r} != /healthz")
        if rp != "/readyz":
            bad(f"{where}: readinessProbe path {rp!r} != /readyz")
        tgp = spec.get("terminationGracePeriodSeconds")
        if not isinstance(tgp, int) or tgp * 1000 <= grace_ms:
            bad(f"{where}: terminationGracePeriodSeconds {tgp} not above shutdown grace {grace_ms} ms")

for name, role in (("webhookd-api", "api"), ("webhookd-worker", "worker")):
    d = need("Deployment", name)
    if not d:
        continue
    tpl = d["spec"]["template"]
    sel = d["spec"]["selector"]["matchLabels"]
    if any(tpl["metadata"]["labels"].get(k) != v for k, v in sel.items()):
        bad(f"Deployment/{name}: selector does not match template labels")
    ann = tpl["metadata"].get("annotations") or {}
    if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != "9090":
        bad(f"Deployment/{name}: Prometheus scrape annotations missing or not on the metrics port 9090")
    # /metrics names every tenant's receiver hosts: its own listener and
    # container port, never the Service's.
    ports = {p.get("name"): p.get("containerPort") for c in tpl["spec"]["containers"] for p in c.get("ports") or []}
    if ports.get("metrics") != 9090:
        bad(f"Deployment/{name}: no container port named metrics on 9090")
    if (cm.get("data") or {}).get("WEBHOOKD__HTTP__METRICS_LISTEN") != "0.0.0.0:9090":
        bad("ConfigMap/webhookd-config: WEBHOOKD__HTTP__METRICS_LISTEN is not 0.0.0.0:9090")
    check_pod("Deployment", name, tpl["spec"], ["run", "--role", role])
    pdb = need("PodDisruptionBudget", name)
    if pdb and pdb["spec"]["selector"]["matchLabels"] != sel:
        bad(f"PodDisruptionBudget/{name}: selector differs from the Deployment's")
api = need("Deployment", "webhookd-api")
if api and api["spec"].get("replicas") != 2:
    bad("Deployment/webhookd-api: replicas != 2")
job = need("Job", "webhookd-migrate")
if job:
    check_pod("Job", "webhookd-migrate", job["spec"]["template"]["spec"], ["migrate"], probes=False)
svc = need("Service", "webhookd-api")
if svc:
    if [p.get("port") for p in svc["spec"]["ports"]] != [8080]:
        bad("Service/webhookd-api: port is not 8080")
    if api and svc["spec"]["selector"] != api["spec"]["selector"]["matchLabels"]:
        bad("Service/webhookd-api: selector does not match the api Deployment")
so = need("ScaledObject", "webhookd-worker")
ta = need("TriggerAuthentication", "webhookd-rabbitmq")
if so:
    if so["spec"]["scaleTargetRef"].get("name") != "webhookd-worker":
        bad("ScaledObject: does not target webhookd-worker")
    trig = so["spec"]["triggers"][0]
    md = trig.get("metadata") or {}
    if trig.get("type") != "rabbitmq" or md.get("mode") != "QueueLength" or md.get("queueName") != "webhookd.events":
        bad("ScaledObject: trigger must be rabbitmq / QueueLength / webhookd.events")
    if (trig.get("authenticationRef") or {}).get("name") != "webhookd-rabbitmq":
        bad("ScaledObject: authenticationRef is not webhookd-rabbitmq")
if ta:
    refs = ta["spec"].get("secretTargetRef") or []
    if not any(r.get("name") == "webhookd-secrets" and r.get("key") in sdata and r.get("parameter") == "host" for r in refs):
        bad("TriggerAuthentication: must map a webhookd-secrets key to parameter host")
hpa = need("HorizontalPodAutoscaler", "webhookd-worker")
kust = objs.get(("Kustomization", "kustomization"), (None, None))[1]
if not kust:
    bad("deploy/k8s/kustomization.yaml missing")
else:
    listed = set(kust.get("resources") or [])
    files = {os.path.basename(p) for p in k8s} - {"kustomization.yaml"}
    for r in listed:
        if not os.path.exists(os.path.join("deploy/k8s", r)):
            bad(f"kustomization lists missing file {r}")
    hpa_file = objs[("HorizontalPodAutoscaler", "webhookd-worker")][0] if hpa else None
    if hpa_file and os.path.basename(hpa_file) in listed:
        bad("kustomization must not list the HPA fallback together with the ScaledObject")
    unlisted = files - listed - ({os.path.basename(hpa_file)} if hpa_file else set())
    if unlisted:
        bad(f"kustomization does not list: {sorted(unlisted)}")

# --- docker-compose ---------------------------------------------------------
compose = load_all("deploy/docker-compose.yml")
if compose:
    services = compose[0].get("services") or {}
    for s in ("postgres", "rabbitmq", "migrate", "api", "worker"):
        if s not in services:
            bad(f"docker-compose.yml: service {s} missing")
    print(f"ok:   docker-compose.yml parses: services {sorted(services)}")

# --- PgBouncer variant: deploy/k8s-pgbouncer and the compose override -----
def check_pool_ini(where, text):
    if not re.search(r'^\s*pool_mode\s*=\s*transaction\s*$', text, re.M):
        bad(f"{where}: pool_mode must be transaction")
    m = re.search(r'^\s*max_prepared_statements\s*=\s*(\d+)', text, re.M)
    if not m or int(m.group(1)) <= 0:
        bad(f"{where}: max_prepared_statements must be > 0 (webhookd's prepared statements)")

def check_urls(where, env):
    url = str(env.get("WEBHOOKD__DATABASE__URL", ""))
    direct = str(env.get("WEBHOOKD__DATABASE__DIRECT_URL", ""))
    if "pgbouncer" not in url:
        bad(f"{where}: WEBHOOKD__DATABASE__URL must point at PgBouncer")
    if not direct or "pgbouncer" in direct:
        bad(f"{where}: WEBHOOKD__DATABASE__DIRECT_URL must point at Postgres itself")

pgb = {}
for path in sorted(glob.glob("deploy/k8s-pgbouncer/*.yaml")):
    for d in load_all(path):
        if not isinstance(d, dict) or "kind" not in d:
            bad(f"{path}: document without kind")
            continue
        name = (d.get("metadata") or {}).get("name", "kustomization")
        pgb[(d["kind"], name)] = (path, d)
kz = pgb.get(("Kustomization", "kustomization"), (None, None))[1]
if not kz:
    bad("deploy/k8s-pgbouncer/kustomization.yaml missing")
else:
    resources = kz.get("resources") or []
    if "../k8s" not in resources:
        bad("deploy/k8s-pgbouncer: must build on ../k8s")
    for r in resources + [p.get("path", "") for p in kz.get("patches") or []]:
        if not os.path.exists(os.path.join("deploy/k8s-pgbouncer", r)):
            bad(f"deploy/k8s-pgbouncer/kustomization.yaml lists missing {r}")
for kind in ("ConfigMap", "Deployment", "Service"):
    if (kind, "webhookd-pgbouncer") not in pgb:
        bad(f"deploy/k8s-pgbouncer: {kind}/webhookd-pgbouncer missing")
cm_data = (pgb.get(("ConfigMap", "webhookd-pgbouncer"), (None, {}))[1].get("data") or {})
check_pool_ini("deploy/k8s-pgbouncer ConfigMap", str(cm_data.get("pgbouncer.ini", "")))
check_pool_ini("deploy/pgbouncer/pgbouncer.ini", open("deploy/pgbouncer/pgbouncer.ini").read())
svc = pgb.get(("Service", "webhookd-pgbouncer"), (None, {}))[1]
ports = [p.get("port") for p in ((svc.get("spec") or {}).get("ports") or [])]
secret_patch = pgb.get(("Secret", "webhookd-secrets"), (None, None))[1]
if not secret_patch:
    bad("deploy/k8s-pgbouncer: the webhookd-secrets patch is missing")
else:
    urls = secret_patch.get("stringData") or {}
    check_urls("deploy/k8s-pgbouncer secret patch", urls)
    port = re.search(r'@[^:/]+:(\d+)/', str(urls.get("WEBHOOKD__DATABASE__URL", "")))
    if not port or int(port.group(1)) not in ports:
        bad(f"deploy/k8s-pgbouncer: the database URL's port is not the Service's {ports}")
override = load_all("deploy/docker-compose.pgbouncer.yml")
base_services = set(((compose[0] if compose else {}).get("services") or {}))
over_services = (override[0].get("services") or {}) if override else {}
if "pgbouncer" not in over_services:
    bad("docker-compose.pgbouncer.yml: service pgbouncer missing")
for name, svc in over_services.items():
    if name == "pgbouncer":
        continue
    if name not in base_services:
        bad(f"docker-compose.pgbouncer.yml: {name} is not a service of docker-compose.yml")
    check_urls(f"docker-compose.pgbouncer.yml {name}", svc.get("environment") or {})
print(f"ok:   PgBouncer variant: k8s {sorted(n for _, n in pgb)}, compose override {sorted(over_services)}")

# --- alert rules ------------------------------------------------------------
rules = load_all("deploy/prometheus/alerts.yml")
names = []
for g in (rules[0].get("groups") if rules else []) or []:
    for r in g.get("rules") or []:
        if "alert" not in r:
            continue
        n = r["alert"]
        names.append(n)
        if not r.get("for"):
            bad(f"alert {n}: no `for`")
        if (r.get("labels") or {}).get("severity") not in ("critical", "warning", "info"):
            bad(f"alert {n}: severity label missing or unknown")
        a = r.get("annotations") or {}
        for k in ("summary", "description", "runbook_url"):
            if not a.get(k):
                bad(f"alert {n}: annotation {k} missing")
        want = f"docs/OPERATIONS.md#runbook-{n.lower()}"
        if not str(a.get("runbook_url", "")).endswith(want):
            bad(f"alert {n}: runbook_url does not end with {want}")
        check_metrics(f"alert {n}", r["expr"])
        for j in re.findall(r'job="([^"]+)"', r["expr"]):
            prom = open("deploy/prometheus/prometheus.yml").read()
            if f"job_name: {j}" not in prom:
                bad(f"alert {n}: job {j} is not a scrape job in prometheus.yml")
if len(names) != len(set(names)):
    bad("duplicate alert names")
print(f"ok:   {len(names)} alerts: {', '.join(names)}")

# --- Grafana dashboard ------------------------------------------------------
try:
    dash = json.load(open("deploy/grafana/webhookd.json"))
except Exception as e:
    bad(f"webhookd.json does not parse: {e}")
    dash = {}
if dash:
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        bad("dashboard: schemaVersion missing or older than 36")
    for k in ("uid", "title"):
        if not dash.get(k):
            bad(f"dashboard: {k} missing")
    tvars = (dash.get("templating") or {}).get("list") or []
    dsvars = [v["name"] for v in tvars if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    if not dsvars:
        bad("dashboard: no Prometheus datasource template variable")
    panels = dash.get("panels") or []
    for p in panels:
        panels.extend(p.get("panels") or [])  # panels inside collapsed rows
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        bad("dashboard: duplicate panel ids")
    exprs = []
    real = [p for p in panels if p.get("type") != "row"]
    for p in real:
        t = p.get("title") or f"panel {p.get('id')}"
        ds = p.get("datasource") or {}
        if not ds or "${" + (dsvars[0] if dsvars else "datasource") + "}" not in json.dumps(ds):
            bad(f"dashboard panel {t!r}: datasource missing or not the template variable")
        gp = p.get("gridPos") or {}
        if not all(k in gp for k in ("x", "y", "w", "h")):
            bad(f"dashboard panel {t!r}: gridPos incomplete")
        ts = p.get("targets") or []
        if not ts:
            bad(f"dashboard panel {t!r}: no targets")
        for tg in ts:
            e = (tg.get("expr") or "").strip()
            if not e:
                bad(f"dashboard panel {t!r}: target {tg.get('refId')} has no expr")
            else:
                exprs.append(e)
                check_metrics(f"dashboard panel {t!r}", e)
    joined = "\n".join(exprs)
    used = set(re.findall(r'[a-zA-Z_:][a-zA-Z0-9_:]*', joined))
    for m in sorted(known):
        # A whole name: webhookd_graphql_subscriptions_refused_total on a
        # panel does not put webhookd_graphql_subscriptions there.
        metric = m + "_bucket" if m in hist else m
        if metric not in used:
            bad(f"dashboard: metric {metric} is on no panel")
    for m in ("rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "histogram_quantile(0.99"):
        if m not in joined:
            bad(f"dashboard: {m} is on no panel")
    print(f"ok:   dashboard parses: {len(real)} panels, {len(exprs)} queries, schemaVersion {dash.get('schemaVersion')}")

sys.exit(1 if problems else 0)
PY
then ok "structure checks"; else fail "structure checks (see above)"; fi

# Promtool validates the expressions of the dashboard too (a Grafana panel's
# query must be valid PromQL once its variables are substituted).
step "dashboard PromQL syntax (promtool)"
if python3 - "$tmp/dash_rules.yml" <<'PY'
import json, sys, yaml
d = json.load(open("deploy/grafana/webhookd.json"))
panels = d["panels"] + [q for p in d["panels"] for q in p.get("panels", [])]
rules = []
for p in panels:
    for t in p.get("targets", []):
        e = t["expr"].replace("$__rate_interval", "5m").replace("$__range", "1h")
        e = e.replace("$job", ".*").replace("$instance", ".*")
        rules.append({"record": f"dashboard:panel{p['id']}_{t['refId']}", "expr": e})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[1], "w"))
PY
then
    if promtool check rules "$tmp/dash_rules.yml" >/dev/null; then ok "every dashboard query is valid PromQL"; else promtool check rules "$tmp/dash_rules.yml"; fail "dashboard PromQL"; fi
else
    fail "could not extract dashboard queries"
fi

echo
if [ "$failures" -ne 0 ]; then
    echo "check-deploy: $failures problem(s)" >&2
    exit 1
fi
echo "check-deploy: all checks passed"
