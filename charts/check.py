"""Checks the Helm chart without a cluster: lint, render with every value file, validate
every manifest strictly against the Kubernetes schemas, and assert what the chart promises,
in both database shapes: SQLite (the defaults) and PostgreSQL (ci/postgres-values.yaml).

Run with the CI venv (helm-python-sdk, kubernetes-validate, PyYAML):
    python charts/check.py
Exits 1 on the first failure with what went wrong.

    python charts/check.py --write-rules PATH
renders the PrometheusRule with the defaults plus auth.existingSecret (release gitops-status
in observability-stack; with a token file, so that GitopsStatusTokenFileNotLoaded is there
too), checks its shape, and writes its spec (the rule groups) to PATH for promtool
(tests/promtool/run.sh).
"""

import argparse
import json
import re
import sys
from pathlib import Path

import helm_python
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "gitops-status"
KUBE_VERSION = "1.30.0"
RELEASE, NAMESPACE = "gitops-status", "observability-stack"
# Where the seeds' pipelines and Grafana call the old server (seeds 000, 002).
SEED_URL = "http://gitops-status-server.observability-stack.svc.cluster.local"
# prometheus-operator's custom resources. kubernetes-validate has schemas for Kubernetes' own
# kinds only, so these are not validated against a schema: assert_monitoring checks their
# shape field by field instead, and tests/promtool/run.sh runs promtool on the rules. The
# templates do not ask .Capabilities.APIVersions for the CRDs either: helm-python renders
# offline without API versions, and on a cluster without the CRDs an install that fails
# ("no matches for kind") says more than one that leaves the objects out silently.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Alert name -> its values under metrics.prometheusRule.
HOST_ALERTS = {"GitopsStatusHostOutOfSync": "hostOutOfSync", "GitopsStatusHostFailed": "hostFailed",
               "GitopsStatusHostStale": "hostStale"}
SERVICE_ALERTS = {"GitopsStatusNotReady": "notReady", "GitopsStatusTargetDown": "targetDown",
                  "GitopsStatusWritesRefused": "writeRefusals"}
VOLUME_ALERTS = {"GitopsStatusVolumeFull": "volumeFull"}
# gitops_status_token_file_loaded exists only when the server runs with a token file.
TOKEN_ALERTS = {"GitopsStatusTokenFileNotLoaded": "tokenFile"}


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def value_files():
    """(label, values) for the defaults and every file in ci/."""
    yield "defaults", {}
    for path in sorted((CHART / "ci").glob("*.yaml")):
        yield f"ci/{path.name}", yaml.safe_load(path.read_text()) or {}


def lint(label, values):
    report = helm_python.lint(
        str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}", namespace=NAMESPACE
    )
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    problems += [{"error": e} for e in report.get("errors", []) or []]
    check(not problems, f"helm lint ({label}): {problems}")


def render(values, release=RELEASE, namespace=NAMESPACE):
    """Rendered manifests as {template: [documents]} and the NOTES text."""
    chart = helm_python.Chart.load(str(CHART))
    try:
        chart.validate_schema(values)
        rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    finally:
        chart.close()
    manifests, notes = {}, ""
    for template, text in rendered.items():
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        docs = [d for d in yaml.safe_load_all(text) if d]
        if docs:
            manifests[template] = docs
    return manifests, notes


def validate(label, manifests):
    count = 0
    for template, docs in manifests.items():
        for doc in docs:
            if doc.get("kind") in CRD_KINDS:
                continue  # no schema to validate against: assert_monitoring checks these
            try:
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
            except Exception as err:  # noqa: BLE001 - every kind of failure is a CI failure
                fail(f"{label}: {template} ({doc.get('kind')}) is not valid Kubernetes "
                     f"{KUBE_VERSION}: {err}")
            count += 1
    return count


def by_kind(manifests):
    kinds = {}
    for docs in manifests.values():
        for doc in docs:
            kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def is_postgres(v):
    """The chart's PostgreSQL shape: database.url.existingSecret names the URL's Secret."""
    return bool(v["database"]["url"]["existingSecret"])


def service_url(service, namespace):
    """The in-cluster base URL of a rendered Service."""
    port = service["spec"]["ports"][0]["port"]
    host = f"{service['metadata']['name']}.{namespace}.svc.cluster.local"
    return f"http://{host}" if port == 80 else f"http://{host}:{port}"


def assert_promises(label, values, manifests, notes, namespace=NAMESPACE):
    """What the chart README promises, checked on the rendered objects; returns the
    in-cluster URL of the Service."""
    kinds = by_kind(manifests)
    merged = helm_python.Chart.load(str(CHART))
    try:
        v = merged.merge_values(values)
    finally:
        merged.close()
    (deployment,) = kinds["Deployment"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)
    postgres = is_postgres(v)

    if postgres:
        check(spec["replicas"] == v["replicaCount"], f"{label}: replicas {spec['replicas']}")
        check(spec["strategy"] == {"type": "RollingUpdate"}, f"{label}: strategy {spec['strategy']}")
    else:
        check(spec["replicas"] == 1, f"{label}: replicas {spec['replicas']}")
        check(spec["strategy"] == {"type": "Recreate"}, f"{label}: strategy {spec['strategy']}")
    check(pod["automountServiceAccountToken"] is False, f"{label}: token automounted")
    psc, csc = pod["securityContext"], container["securityContext"]
    check(psc["runAsNonRoot"] and psc["runAsUser"] == 65532 and psc["runAsGroup"] == 65532
          and psc["fsGroup"] == 65532, f"{label}: pod securityContext {psc}")
    check(psc["seccompProfile"] == {"type": "RuntimeDefault"}, f"{label}: seccomp {psc}")
    check(csc["readOnlyRootFilesystem"] is True and csc["allowPrivilegeEscalation"] is False
          and csc["capabilities"] == {"drop": ["ALL"]}, f"{label}: container securityContext {csc}")
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready"),
                        ("startupProbe", "/health")):
        get = container[probe]["httpGet"]
        check(get == {"path": path, "port": "http"}, f"{label}: {probe} {get}")
    check(pod["terminationGracePeriodSeconds"] > int(env["GITOPS_STATUS_SHUTDOWN_TIMEOUT"]),
          f"{label}: grace period not longer than the shutdown timeout")
    # The image's ENTRYPOINT is `gitops-status serve`; arguments would follow it.
    check("args" not in container and "command" not in container,
          f"{label}: the container overrides the image's entrypoint")
    (db,) = [e for e in container["env"] if e["name"] == "GITOPS_STATUS_DB"]
    db_url = v["database"]["url"]
    if postgres:
        check(db == {"name": "GITOPS_STATUS_DB", "valueFrom": {"secretKeyRef": {
              "name": db_url["existingSecret"], "key": db_url["key"]}}}, f"{label}: db {db}")
    else:
        check(db == {"name": "GITOPS_STATUS_DB", "value": "/data/gitops-status.db"}, f"{label}: db {db}")
    check(env["GITOPS_STATUS_LISTEN"] == "0.0.0.0:5000", f"{label}: listen {env}")
    retention = v["retention"]
    for variable, key in (("RETAIN_REPORTS", "reports"), ("RETAIN_CHANGES", "changes"),
                          ("RETAIN_PER_HOST", "perHost"), ("PRUNE_INTERVAL", "pruneInterval")):
        check(env[f"GITOPS_STATUS_{variable}"] == str(retention[key]),
              f"{label}: GITOPS_STATUS_{variable} {env.get(f'GITOPS_STATUS_{variable}')}")
    check(env["GITOPS_STATUS_IDEMPOTENCY_WINDOW"] == v["idempotencyWindow"],
          f"{label}: GITOPS_STATUS_IDEMPOTENCY_WINDOW {env.get('GITOPS_STATUS_IDEMPOTENCY_WINDOW')}")
    check(env["GITOPS_STATUS_STALE_AFTER"] == v["staleAfter"],
          f"{label}: GITOPS_STATUS_STALE_AFTER {env.get('GITOPS_STATUS_STALE_AFTER')}")
    check(env["GITOPS_STATUS_METRICS_PER_HOST"] == str(v["metrics"]["perHost"]).lower(),
          f"{label}: GITOPS_STATUS_METRICS_PER_HOST {env.get('GITOPS_STATUS_METRICS_PER_HOST')}")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {vol["name"]: vol for vol in pod["volumes"]}
    check(mounts.get("tmp") == "/tmp" and volumes["tmp"]["emptyDir"]["sizeLimit"] == v["tmpVolume"]["sizeLimit"],
          f"{label}: /tmp {mounts} {volumes.get('tmp')}")
    if postgres:
        check("data" not in mounts and "data" not in volumes
              and "/data" not in {m["mountPath"] for m in container["volumeMounts"]},
              f"{label}: /data mounted with PostgreSQL: {mounts}")
    else:
        check(mounts.get("data") == "/data", f"{label}: /data not mounted: {mounts}")
    password = v["database"]["passwordFile"]
    if postgres and password["existingSecret"]:
        secret = volumes["db-password"]["secret"]
        check(secret["secretName"] == password["existingSecret"]
              and secret["items"] == [{"key": password["key"], "path": password["key"]}],
              f"{label}: password Secret {secret}")
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "db-password"]
        check(mount == {"name": "db-password", "mountPath": "/etc/gitops-status/db", "readOnly": True},
              f"{label}: password mount {mount}")
        check(env["GITOPS_STATUS_DB_PASSWORD_FILE"] == f"/etc/gitops-status/db/{password['key']}",
              f"{label}: password file {env.get('GITOPS_STATUS_DB_PASSWORD_FILE')}")
    else:
        check("GITOPS_STATUS_DB_PASSWORD_FILE" not in env and "db-password" not in volumes,
              f"{label}: a password file without PostgreSQL and a password Secret")

    if v["auth"]["existingSecret"]:
        secret = volumes["auth"]["secret"]
        check(secret["secretName"] == v["auth"]["existingSecret"], f"{label}: token Secret")
        check(mounts.get("auth") == "/etc/gitops-status/auth", f"{label}: token mount {mounts}")
        check(env["GITOPS_STATUS_TOKENS"] == f"/etc/gitops-status/auth/{v['auth']['secretKey']}",
              f"{label}: token path {env['GITOPS_STATUS_TOKENS']}")
        check(env["GITOPS_STATUS_READ_REQUIRES_TOKEN"] == str(v["auth"]["readRequiresToken"]).lower(),
              f"{label}: read-requires-token")
    else:
        check("GITOPS_STATUS_TOKENS" not in env and "auth" not in volumes, f"{label}: tokens without a Secret")

    (service,) = kinds["Service"]
    (port,) = service["spec"]["ports"]
    url = service_url(service, namespace)
    check(service["spec"]["selector"] == spec["selector"]["matchLabels"], f"{label}: selector")
    check(service["spec"]["type"] == v["service"]["type"], f"{label}: service type")
    check(port["port"] == v["service"]["port"] and port["targetPort"] == "http",
          f"{label}: service port {port}")
    check(container["ports"][0]["containerPort"] == 5000, f"{label}: container port")

    claims = kinds.get("PersistentVolumeClaim", [])
    persistence = v["persistence"]
    budgets = kinds.get("PodDisruptionBudget", [])
    if postgres:
        check(not claims, f"{label}: a claim rendered with PostgreSQL")
        check("LOST" not in notes and "PostgreSQL" in notes and db_url["existingSecret"] in notes,
              f"{label}: NOTES do not describe the PostgreSQL shape")
    else:
        check(not budgets, f"{label}: a PodDisruptionBudget with SQLite")
    if budgets:
        (budget,) = budgets
        pdb = v["podDisruptionBudget"]
        want = ({"minAvailable": pdb["minAvailable"]} if pdb.get("minAvailable") is not None
                else {"maxUnavailable": pdb["maxUnavailable"]})
        check(budget["apiVersion"] == "policy/v1"
              and budget["spec"] == {**want, "selector": {"matchLabels": spec["selector"]["matchLabels"]}},
              f"{label}: PodDisruptionBudget {budget}")
    check(len(budgets) == int(postgres and v["podDisruptionBudget"]["enabled"]),
          f"{label}: {len(budgets)} PodDisruptionBudgets")
    if postgres:
        pass
    elif not persistence["enabled"]:
        check("emptyDir" in volumes["data"] and not claims, f"{label}: expected an emptyDir")
        check("history" in notes and "LOST" in notes, f"{label}: NOTES lack the persistence warning")
    elif persistence["existingClaim"]:
        check(not claims, f"{label}: a claim rendered despite existingClaim")
        check(volumes["data"]["persistentVolumeClaim"]["claimName"] == persistence["existingClaim"],
              f"{label}: existing claim not mounted")
    else:
        (claim,) = claims
        check(volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"],
              f"{label}: claim not mounted")
        check(claim["spec"]["accessModes"] == persistence["accessModes"], f"{label}: access modes")
        check("LOST" not in notes, f"{label}: persistence warning with persistence on")
    for needle in (f"{url}/status", f"{url}/swagger-ui/", f"curl -fsS -X POST {url}/status/pipeline"):
        check(needle in notes, f"{label}: NOTES lack {needle!r}")

    if v["grafana"]["dashboard"]["enabled"]:
        (dashboard,) = [c for c in kinds["ConfigMap"] if c["metadata"]["name"].endswith("-dashboard")]
        check(dashboard["metadata"]["labels"].get("grafana_dashboard") == "1",
              f"{label}: dashboard label")
        board = json.loads(dashboard["data"]["gitops-status.json"])
        urls = [t["url"] for p in board["panels"] for t in p.get("targets", [])]
        urls += [v["query"]["infinityQuery"]["url"] for v in board["templating"]["list"]]
        check(urls and all(u.startswith(url + "/") for u in urls), f"{label}: dashboard URLs {urls}")
        uids = {t["datasource"]["uid"] for p in board["panels"] for t in p.get("targets", [])}
        check(uids == {v["grafana"]["dashboard"]["datasourceUid"]}, f"{label}: datasource uids {uids}")
        check({"Current state", "Rollouts", "History of the selected hosts"}
              <= {p["title"] for p in board["panels"]}, f"{label}: panels")
    if v["grafana"]["datasource"]["enabled"]:
        (source,) = [c for c in kinds["ConfigMap"] if c["metadata"]["name"].endswith("-datasource")]
        provisioning = yaml.safe_load(source["data"]["gitops-status-datasource.yaml"])
        (ds,) = provisioning["datasources"]
        check(ds["type"] == "yesoreyeram-infinity-datasource", f"{label}: datasource type")
        check(ds["url"] == url and ds["jsonData"]["allowedHosts"] == [url + "/"],
              f"{label}: datasource {ds['url']} / {ds['jsonData']['allowedHosts']} for {url}")
        check(ds["uid"] == v["grafana"]["dashboard"]["datasourceUid"], f"{label}: datasource uid")
        env_var = v["grafana"]["datasource"]["bearerTokenEnv"]
        if env_var:
            check(ds["jsonData"].get("auth_method") == "bearerToken"
                  and ds["secureJsonData"]["bearerToken"] == f"$__env{{{env_var}}}",
                  f"{label}: datasource bearer token {ds}")
        else:
            check("secureJsonData" not in ds, f"{label}: datasource has a token without bearerTokenEnv")
    if v["networkPolicy"]["enabled"]:
        (policy,) = kinds["NetworkPolicy"]
        (rule,) = policy["spec"]["ingress"]
        check(policy["spec"]["podSelector"]["matchLabels"] == spec["selector"]["matchLabels"],
              f"{label}: NetworkPolicy selects other pods")
        check(rule["from"] == v["networkPolicy"]["writers"] + v["networkPolicy"]["readers"],
              f"{label}: NetworkPolicy sources {rule['from']}")
        check(rule["ports"] == [{"port": "http", "protocol": "TCP"}], f"{label}: NetworkPolicy ports")
    assert_monitoring(label, v, kinds, service, spec["selector"]["matchLabels"], namespace)
    return url


def assert_monitoring(label, v, kinds, service, selector, namespace):
    """The ServiceMonitor and the PrometheusRule, field by field (no schema knows them)."""
    metrics, fullname = v["metrics"], service["metadata"]["name"]
    monitor_values, rule_values = metrics["serviceMonitor"], metrics["prometheusRule"]
    monitors, rules = kinds.get("ServiceMonitor", []), kinds.get("PrometheusRule", [])
    check(len(monitors) == int(monitor_values["enabled"]), f"{label}: {len(monitors)} ServiceMonitors")
    check(len(rules) == int(rule_values["enabled"]), f"{label}: {len(rules)} PrometheusRules")

    if monitors:
        (monitor,) = monitors
        token = monitor_values["bearerTokenSecret"]
        endpoint = {"port": "http", "path": "/metrics", "scheme": "http"}
        for key in ("interval", "scrapeTimeout"):
            if monitor_values[key]:
                endpoint[key] = monitor_values[key]
        if token["name"]:
            endpoint["authorization"] = {"type": "Bearer",
                                         "credentials": {"name": token["name"], "key": token["key"]}}
        expected = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": fullname,
                         "labels": {**service["metadata"]["labels"], **monitor_values["labels"]}},
            "spec": {"namespaceSelector": {"matchNames": [namespace]},
                     "selector": {"matchLabels": selector},
                     "endpoints": [endpoint]},
        }
        check(monitor == expected, f"{label}: ServiceMonitor\n  got      {monitor}\n  expected {expected}")
        matched = monitor["spec"]["selector"]["matchLabels"]
        check(matched and matched.items() <= service["metadata"]["labels"].items(),
              f"{label}: the ServiceMonitor's selector {matched} does not select the Service")
        check("http" in {p["name"] for p in service["spec"]["ports"]}, f"{label}: no http port to scrape")
        check("authorization" in endpoint or not v["auth"]["readRequiresToken"],
              f"{label}: /metrics needs a read token and the ServiceMonitor sends none")

    if rules:
        (rule,) = rules
        check(rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule",
              f"{label}: PrometheusRule {rule['apiVersion']} {rule['kind']}")
        want = {"name": fullname, "labels": {**service["metadata"]["labels"], **rule_values["labels"]}}
        check(rule["metadata"] == want, f"{label}: PrometheusRule metadata {rule['metadata']}")
        check(list(rule["spec"]) == ["groups"], f"{label}: PrometheusRule spec keys {list(rule['spec'])}")
        groups = rule["spec"]["groups"]
        check(all(list(g) == ["name", "rules"] for g in groups), f"{label}: rule group keys")
        check(len({g["name"] for g in groups}) == len(groups), f"{label}: duplicate rule group names")
        got = [r for g in groups for r in g["rules"]]
        alerts = {r["alert"]: r for r in got}
        expected = dict(SERVICE_ALERTS)
        if metrics["perHost"]:
            expected |= HOST_ALERTS
        if v["persistence"]["enabled"] and not is_postgres(v):
            expected |= VOLUME_ALERTS
        if v["auth"]["existingSecret"]:
            expected |= TOKEN_ALERTS
        check(len(alerts) == len(got) and set(alerts) == set(expected),
              f"{label}: alerts {sorted(r['alert'] for r in got)}, expected {sorted(expected)}")
        for name, expr in alert_expressions(v, fullname, namespace).items():
            if name not in alerts:
                continue
            r, values = alerts[name], rule_values[expected[name]]
            check(list(r) == ["alert", "expr", "for", "labels", "annotations"], f"{label}: {name} keys {list(r)}")
            check(r["expr"] == expr, f"{label}: {name}\n  expr     {r['expr']}\n  expected {expr}")
            check(r["for"] == values["for"], f"{label}: {name} for {r['for']}, values say {values['for']}")
            check(r["labels"] == {"severity": values["severity"]}, f"{label}: {name} labels {r['labels']}")
            notes = r["annotations"]
            check(list(notes) == ["summary", "description"] and all(notes.values()),
                  f"{label}: {name} annotations {notes}")
            needles = (["{{ $labels.server_group }}", "{{ $labels.host }}"] if name in HOST_ALERTS
                       else ["{{ $labels.persistentvolumeclaim }}"] if name in VOLUME_ALERTS
                       else ["{{ $labels.namespace }}/{{ $labels.job }}"])
            check(all(n in notes["summary"] and n in notes["description"] for n in needles),
                  f"{label}: {name} annotations do not name {needles}")
        # A token file that fails to load leaves /ready at 200 (a warning): NotReady must not
        # claim it, and the token alert must say what it means and where to look.
        check("token" not in alerts["GitopsStatusNotReady"]["annotations"]["description"],
              f"{label}: GitopsStatusNotReady still blames the token file")
        if "GitopsStatusTokenFileNotLoaded" in alerts:
            notes = alerts["GitopsStatusTokenFileNotLoaded"]["annotations"]
            text = notes["summary"] + " " + notes["description"]
            for needle in ("no token is accepted", "503", "log", "/ready", "warnings"):
                check(needle in text, f"{label}: GitopsStatusTokenFileNotLoaded annotations lack {needle!r}")


def alert_expressions(v, fullname, namespace):
    """Every alert's PromQL as the chart README documents it, for these values."""
    rule = v["metrics"]["prometheusRule"]
    scope = f'namespace="{namespace}", job="{rule["job"] or fullname}"'
    host = "max by (namespace, job, server_group, host)"
    refusals = rule["writeRefusals"]
    claim = v["persistence"]["existingClaim"] or f"{fullname}-data"
    volume = f'{{namespace="{namespace}", persistentvolumeclaim="{claim}"}}'
    by_claim = "max by (namespace, persistentvolumeclaim)"
    return {
        "GitopsStatusHostOutOfSync": f'{host} (gitops_status_host_status{{{scope}, status="out_of_sync"}}) == 1',
        "GitopsStatusHostFailed": f'{host} (gitops_status_host_status{{{scope}, status="failed"}}) == 1',
        "GitopsStatusHostStale": f"{host} (gitops_status_host_stale{{{scope}}}) == 1",
        "GitopsStatusNotReady": f"min by (namespace, job) (gitops_status_ready{{{scope}}}) == 0",
        "GitopsStatusTokenFileNotLoaded":
            f"min by (namespace, job) (gitops_status_token_file_loaded{{{scope}}}) == 0",
        "GitopsStatusTargetDown": f"min by (namespace, job) (up{{{scope}}}) == 0",
        "GitopsStatusWritesRefused":
            f"sum by (namespace, job, reason) (rate(gitops_status_reports_refused_total{{{scope}, "
            f'reason=~"queue_full|storage"}}[{refusals["window"]}])) > {refusals["perSecond"]}',
        "GitopsStatusVolumeFull":
            f"{by_claim} (kubelet_volume_stats_available_bytes{volume}) / "
            f"{by_claim} (kubelet_volume_stats_capacity_bytes{volume}) < {rule['volumeFull']['availableBelow']}",
    }


def assert_every_option_is_reachable():
    """Every GITOPS_STATUS_* variable the server reads (and RUST_LOG) is set in the rendered
    container when every config value is given. The `report` command's options (from
    `pub enum ReportMode` on) are the CI client's, not the server's the chart deploys, and
    migrate-db's are a one-off command's."""
    cli = (ROOT / "src" / "cli.rs").read_text()
    check("pub enum ReportMode" in cli, "src/cli.rs: the report command's options not found")
    cli = cli.split("pub enum ReportMode")[0]
    variables = set(re.findall(r'env = "(GITOPS_STATUS_[A-Z_]+)"', cli)) | {"RUST_LOG"}
    # migrate-db's: it runs once, by hand, before the chart's PostgreSQL shape is installed
    # (README, Moving to PostgreSQL); no pod the chart renders reads them.
    variables -= {"GITOPS_STATUS_MIGRATE_FROM", "GITOPS_STATUS_MIGRATE_TO"}
    check(len(variables) > 1, "no GITOPS_STATUS_ variables found in src/cli.rs")
    # The PostgreSQL shape with a password file: it sets everything the SQLite shape does, and
    # GITOPS_STATUS_DB_PASSWORD_FILE besides.
    manifests, _ = render({"config": {"workers": 3}, "auth": {"existingSecret": "gitops-status-tokens"},
                           "database": {"url": {"existingSecret": "gitops-status-db"},
                                        "passwordFile": {"existingSecret": "gitops-status-db-password"}}})
    (deployment,) = by_kind(manifests)["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    missing = sorted(variables - set(env_of(container)))
    check(not missing, f"options without a chart value: {missing}")
    readme = (CHART / "README.md").read_text()
    keys = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, re.M))
    defaults = helm_python.Chart.load(str(CHART))
    try:
        leaves = set(flatten(defaults.values))
    finally:
        defaults.close()
    undocumented = sorted(k for k in leaves if not any(k == d or k.startswith(d + ".") for d in keys))
    check(not undocumented, f"values missing from the chart README table: {undocumented}")


def flatten(values, prefix=""):
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from flatten(value, path + ".")
        else:
            yield path


def assert_schema_refuses(values, why):
    chart = helm_python.Chart.load(str(CHART))
    try:
        chart.validate_schema(values)
    except helm_python.HelmValuesError as err:
        print(f"  refused as expected ({why}): {' '.join(str(err).split())[:140]}")
        return
    finally:
        chart.close()
    fail(f"values.schema.json accepted {values} ({why})")


def assert_render_refuses(values, why, says=()):
    """The chart refuses to render values, with a message holding every string in `says`."""
    try:
        render(values)
    except (helm_python.HelmRenderError, helm_python.HelmValuesError) as err:
        message = " ".join(str(err).split())
        missing = [s for s in says if s not in message]
        check(not missing, f"refused {values} ({why}), but the message lacks {missing}: {message}")
        print(f"  refused as expected ({why}): {message[:140]}")
        return
    fail(f"the chart rendered {values} ({why})")


def assert_shapes(rendered):
    """The key facts of the two database shapes, on the defaults and ci/postgres-values.yaml."""
    for label, replicas, strategy, claims, budgets in (("defaults", 1, "Recreate", 1, 0),
                                                      ("ci/postgres-values.yaml", 2, "RollingUpdate", 0, 1)):
        kinds = by_kind(rendered[label])
        (deployment,) = kinds["Deployment"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (db,) = [e for e in container["env"] if e["name"] == "GITOPS_STATUS_DB"]
        got = (deployment["spec"]["replicas"], deployment["spec"]["strategy"]["type"],
               len(kinds.get("PersistentVolumeClaim", [])), len(kinds.get("PodDisruptionBudget", [])))
        check(got == (replicas, strategy, claims, budgets),
              f"{label}: (replicas, strategy, claims, budgets) {got}, expected "
              f"{(replicas, strategy, claims, budgets)}")
        from_secret = "secretKeyRef" in db.get("valueFrom", {})
        check(from_secret == (strategy == "RollingUpdate"), f"{label}: GITOPS_STATUS_DB {db}")
        print(f"ok  {label}: {'PostgreSQL' if from_secret else 'SQLite'} shape: {replicas} replica(s), "
              f"{strategy}, {claims} claim(s), {budgets} PodDisruptionBudget(s), GITOPS_STATUS_DB "
              f"{'from the Secret' if from_secret else db['value']}")
    postgres = {"database": {"url": {"existingSecret": "gitops-status-db"}}}
    manifests, _ = render({**postgres, "replicaCount": 3,
                           "podDisruptionBudget": {"enabled": True, "minAvailable": "50%", "maxUnavailable": None}})
    (budget,) = by_kind(manifests)["PodDisruptionBudget"]
    check("maxUnavailable" not in budget["spec"] and budget["spec"]["minAvailable"] == "50%",
          f"minAvailable 50%: PodDisruptionBudget {budget['spec']}")
    return postgres


def argocd_example():
    """(release, namespace, values) of the Argo CD Application shown in the chart README."""
    readme = (CHART / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    apps = [yaml.safe_load(b) for b in blocks if "kind: Application" in b]
    check(len(apps) == 1, "the chart README shows one Argo CD Application")
    source = apps[0]["spec"]["source"]
    check(source["path"] == "charts/gitops-status", f"Argo CD path {source['path']}")
    release = source["helm"].get("releaseName", apps[0]["metadata"]["name"])
    namespace = apps[0]["spec"]["destination"]["namespace"]
    return release, namespace, yaml.safe_load(source["helm"]["values"])


def main():
    total, rendered = 0, {}
    for label, values in value_files():
        lint(label, values)
        manifests, notes = render(values)
        rendered[label] = manifests
        total += validate(label, manifests)
        assert_promises(label, values, manifests, notes)
        kinds = sorted(d["kind"] for docs in manifests.values() for d in docs)
        custom = [k for k in kinds if k in CRD_KINDS]
        kinds = [k for k in kinds if k not in CRD_KINDS]
        print(f"ok  {label}: lint clean; {len(kinds)} manifests valid for Kubernetes "
              f"{KUBE_VERSION} (strict): {', '.join(kinds)}"
              + (f"; shape checked: {', '.join(custom)}" if custom else ""))
    label = "README's Argo CD Application"
    release, namespace, values = argocd_example()
    lint(label, values)
    manifests, notes = render(values, release, namespace)
    total += validate(label, manifests)
    url = assert_promises(label, values, manifests, notes, namespace)
    check(url == SEED_URL, f"{label}: the Service answers at {url}, the seeds' clients call {SEED_URL}")
    print(f"ok  {label}: renders, validates, and serves at the seeds' address {url}")
    assert_every_option_is_reachable()
    print("ok  every service option is set by the chart; every value is in the chart README")
    postgres = assert_shapes(rendered)
    assert_schema_refuses({"service": {"port": "eighty"}}, "service.port is a string")
    assert_schema_refuses({"replicaCount": -1}, "a negative replica count")
    assert_schema_refuses({"database": {"url": "postgres://app:secret@db/app"}}, "a database URL in clear in the values")
    assert_schema_refuses({"database": {"password": "secret"}}, "a database password in the values")
    assert_schema_refuses({"podDisruptionBudget": {"maxUnavailable": 0}}, "a budget that blocks every drain")
    assert_schema_refuses({"podDisruptionBudget": {"minAvailable": "half"}}, "a budget neither number nor percentage")
    assert_schema_refuses({"persistence": {"enabled": "yes"}}, "persistence.enabled is a string")
    assert_schema_refuses({"persistance": {"enabled": False}}, "misspelt key")
    assert_schema_refuses({"podLabels": {"app.kubernetes.io/name": "x"}}, "podLabels replace a selector label")
    assert_schema_refuses({"retention": {"reports": "30"}}, "a retention duration without a unit")
    assert_schema_refuses({"retention": {"pruneInterval": "off"}}, "pruning cannot be switched off")
    assert_schema_refuses({"staleAfter": "rsyslog=10"}, "a stale-after duration without a unit")
    assert_schema_refuses({"idempotencyWindow": "24"}, "an idempotency window without a unit")
    assert_schema_refuses({"staleAfter": "10m"}, "a stale-after rule without a group pattern")
    assert_schema_refuses({"staleAfter": "rsyslog-*=10m,"}, "a stale-after list with an empty rule")
    assert_render_refuses({"extraEnv": [{"name": "GITOPS_STATUS_DB", "value": "/tmp/x.db"}]},
                          "extraEnv overrides a chart-managed variable")
    assert_render_refuses({"terminationGracePeriodSeconds": 10}, "grace period below shutdown timeout")
    assert_render_refuses({"replicaCount": 1, "statusJson": {"repo": "rsyslog", "server": "rsyslog-lab"}},
                          "the seeds' Application values: statusJson is gone")
    assert_render_refuses({"auth": {"readRequiresToken": True}}, "read tokens without a token file")
    assert_render_refuses({"replicaCount": 2}, "two writers on one SQLite file",
                          says=("replicaCount is 2", "SQLite", "ReadWriteOnce", "one writer", "PostgreSQL",
                                "database.url.existingSecret"))
    assert_render_refuses({"podDisruptionBudget": {"enabled": True}}, "a PodDisruptionBudget with SQLite",
                          says=("needs PostgreSQL", "one pod"))
    assert_render_refuses({"database": {"passwordFile": {"existingSecret": "gitops-status-db-password"}}},
                          "a PostgreSQL password without a PostgreSQL URL", says=("database.url.existingSecret",))
    assert_render_refuses({**postgres, "replicaCount": 2, "podDisruptionBudget": {"enabled": True, "minAvailable": 2,
                                                                        "maxUnavailable": None}},
                          "a budget that keeps every replica up", says=("block every voluntary eviction",))
    assert_render_refuses({**postgres, "replicaCount": 2, "podDisruptionBudget": {"enabled": True, "minAvailable": 1}},
                          "a budget with both minAvailable and maxUnavailable", says=("exactly one",))
    assert_render_refuses({**postgres, "podDisruptionBudget": {"enabled": True, "maxUnavailable": None}},
                          "a budget with neither minAvailable nor maxUnavailable", says=("exactly one",))
    assert_render_refuses({"networkPolicy": {"enabled": True, "writers": [], "readers": []}},
                          "NetworkPolicy without sources")
    assert_render_refuses({"auth": {"existingSecret": "gitops-status-tokens", "readRequiresToken": True},
                           "metrics": {"serviceMonitor": {"enabled": True}}},
                          "a ServiceMonitor without a read token while /metrics needs one")
    assert_schema_refuses({"metrics": {"prometheusRule": {"hostOutOfSync": {"for": "30 minutes"}}}},
                          "an alert duration Prometheus cannot read")
    assert_schema_refuses({"metrics": {"prometheusRule": {"tokenFile": {"severity": ""}}}},
                          "a token-file alert without a severity")
    assert_schema_refuses({"metrics": {"prometheusRule": {"volumeFull": {"availableBelow": 10}}}},
                          "a volume threshold in percent, not a fraction")
    assert_schema_refuses({"metrics": {"serviceMonitor": {"bearerToken": "secret"}}},
                          "a token in the values instead of a Secret")
    print(f"chart: ok ({total} manifests validated)")


def write_rules(path):
    """The default PrometheusRule's spec (its rule groups), checked, for promtool. With a token
    file (auth.existingSecret), so that GitopsStatusTokenFileNotLoaded is rendered and tested."""
    values = {"auth": {"existingSecret": "gitops-status-tokens"},
              "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}}
    manifests, notes = render(values)
    assert_promises("--write-rules", values, manifests, notes)
    (rule,) = by_kind(manifests)["PrometheusRule"]
    Path(path).write_text(yaml.safe_dump(rule["spec"], sort_keys=False, width=1000))
    print(f"wrote the PrometheusRule's rule groups ({RELEASE} in {NAMESPACE}) to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-rules", metavar="PATH",
                        help="only write the default PrometheusRule's rule groups (with auth.existingSecret) "
                             "to PATH, for promtool")
    args = parser.parse_args()
    if args.write_rules:
        write_rules(args.write_rules)
    else:
        main()
