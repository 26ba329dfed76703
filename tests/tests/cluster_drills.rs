//! Failure drills in the local cluster (a test binary of its own: cargo runs binaries one after
//! another, so no other suite shares the cluster while these kill things). A standalone gateway in
//! front of a sample API in Pods; after each failure — the gateway's Pods killed, the operator's
//! Pods killed, every container of the kubelet killed, the API server restarted — traffic through
//! the gateway comes back by itself, well within the mission's 5 minutes, and the operator still
//! applies changes afterwards.

use anyhow::{bail, Context, Result};
use kea_e2e::cluster::{Cluster, Namespace};
use kea_e2e::http;
use std::time::{Duration, Instant};

/// The mission's bound on self-restoration.
const RESTORE_WITHIN: Duration = Duration::from_secs(300);

fn resources(image: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, labels: {{app: api}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: api
          image: {image}
          args: ["8080", "--bind", "0.0.0.0"]
          readinessProbe: {{httpGet: {{path: /_kea/stats, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: api}}
spec:
  selector: {{app: api}}
  ports: [{{port: 80, targetPort: 8080, protocol: TCP}}]
---
apiVersion: kea.dev/v1alpha1
kind: GatewayBinding
metadata: {{name: drill}}
spec:
  standalone: {{replicas: 2, concurrency: 1, resources: {{requests: {{cpu: 50m, memory: 64Mi}}}}}}
---
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {{name: things}}
spec:
  gateway: drill
  hosts: ["*"]
  basePath: /things
  backends: [{{service: api, port: 80}}]
  schema: {{operations: [{{path: "/{{id}}", method: GET, parameters: [{{name: id, in: path, required: true, schema: {{type: string}}}}]}}]}}
  auth: {{anonymous: true}}
"#
    )
}

/// A new API on the gateway, to show the operator still applies changes.
fn extra_api(name: &str) -> String {
    format!(
        r#"
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {{name: {name}}}
spec:
  gateway: drill
  hosts: ["*"]
  basePath: /{name}
  backends: [{{service: api, port: 80}}]
  schema: {{operations: [{{path: "/{{id}}", method: GET, parameters: [{{name: id, in: path, required: true, schema: {{type: string}}}}]}}]}}
  auth: {{anonymous: true}}
"#
    )
}

/// Polls `url` until it answers 200; the time it took.
async fn until_served(url: &str, within: Duration) -> Result<Duration> {
    let started = Instant::now();
    // A short timeout: a connection to a Pod that is gone must not hide the one that answers.
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
    loop {
        // What this try saw, for the failure message: a status, or why there was none.
        let last = match http::Response::from_ureq(agent.get(url).call()) {
            Ok(response) if response.status == 200 => return Ok(started.elapsed()),
            Ok(response) => {
                let body: String = response.body.chars().take(300).collect();
                format!("status {}: {body}", response.status)
            }
            Err(err) => err.to_string(),
        };
        if started.elapsed() > within {
            bail!("{url} not served within {within:?}; the last try got {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The gateway's address; its Service keeps it across Pod restarts.
async fn ready_gateway(ns: &Namespace) -> Result<String> {
    ns.wait_deployment_ready("kea-gateway-drill", Duration::from_secs(180))
        .await?;
    ns.service_address("kea-gateway-drill").await
}

/// Waits until both gateway Pods are ready again and kube-proxy has dropped the endpoints of
/// the killed ones (a connection to one of those is refused), before the next drill.
async fn settle(ns: &Namespace) -> Result<()> {
    ready_gateway(ns).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}

async fn kill_all(ns: &Namespace, selector: &str) -> Result<usize> {
    let pods = ns.pods(selector).await?;
    for pod in &pods {
        ns.kill_pod(pod.metadata.name.as_deref().context("pod without name")?)
            .await?;
    }
    Ok(pods.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_restores_itself_after_pods_operator_containers_and_api_server_fail() -> Result<()> {
    let cluster = Cluster::shared()?;
    let ns = cluster.namespace("kea-drill").await?;
    ns.apply(&resources(cluster.setting("KEA_IMAGE_UPSTREAM")?))
        .await?;
    ns.wait_deployment_ready("api", Duration::from_secs(120)).await?;
    let gateway = ready_gateway(&ns).await?;
    let url = format!("http://{gateway}/things/1");
    until_served(&url, Duration::from_secs(60)).await?;
    let mut report = Vec::new();

    // 1. Both gateway Pods crash: the Deployment replaces them and they fetch their configuration.
    let killed = kill_all(&ns, "kea.dev/gateway=drill").await?;
    assert_eq!(killed, 2);
    let took = until_served(&url, RESTORE_WITHIN).await?;
    report.push(format!(
        "gateway Pods killed: served again after {:.1} s",
        took.as_secs_f64()
    ));
    settle(&ns).await?;

    // 2. The operator's Pods crash: the gateway keeps serving meanwhile; once an operator leads
    //    again, changes are applied.
    let operators = cluster.kubectl(&[
        "-n",
        "kea-system",
        "delete",
        "pod",
        "-l",
        "app.kubernetes.io/name=kea-operator",
        "--grace-period=0",
        "--force",
    ])?;
    eprintln!("{}", operators.trim());
    let during = http::get(&url)?;
    assert_eq!(
        during.status, 200,
        "the gateway stopped serving with the operator down"
    );
    let written = Instant::now();
    ns.apply(&extra_api("after-operator")).await?;
    let took = until_served(&format!("http://{gateway}/after-operator/1"), RESTORE_WITHIN).await?;
    report.push(format!(
        "operator Pods killed: a new API served {:.1} s after it was written",
        written.elapsed().max(took).as_secs_f64()
    ));

    // 3. Every container the kubelet runs is killed (as if the node's runtime crashed): the
    //    kubelet restarts them all — the operator, the gateway, the API.
    let started = Instant::now();
    cluster.kill_all_containers()?;
    until_served(&url, RESTORE_WITHIN).await?;
    report.push(format!(
        "every container killed: served again after {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    settle(&ns).await?;

    // 4. The API server restarts: the gateway serves from its configuration meanwhile, and the
    //    operator picks up changes once the server is back.
    let started = Instant::now();
    cluster.restart_apiserver()?;
    let during = http::get(&url)?;
    assert_eq!(
        during.status, 200,
        "the gateway stopped serving while the API server restarted"
    );
    ns.apply(&extra_api("after-apiserver")).await?;
    until_served(&format!("http://{gateway}/after-apiserver/1"), RESTORE_WITHIN).await?;
    report.push(format!(
        "API server restarted: a new API served {:.1} s after the restart began",
        started.elapsed().as_secs_f64()
    ));
    for line in &report {
        eprintln!("drill: {line}");
    }
    Ok(())
}
