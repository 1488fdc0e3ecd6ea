//! What the Cluster page asks of the swarm backend: the nodes and where the stack's tasks
//! run, and draining or activating a node (operator, one action at a time per node, audited).
use app::{
    api::{ClusterView, NodeVerb, Principal, Role},
    backend::ClusterApi,
    error::AppError,
};

use super::swarm::SwarmError;
use crate::{
    config::Backend,
    state::{require, Act, Services},
};

impl From<SwarmError> for AppError {
    fn from(e: SwarmError) -> Self {
        match e {
            SwarmError::NoSuchNode(_) | SwarmError::NoSuchService(_) => AppError::NotFound(e.to_string()),
            SwarmError::Compose(_) | SwarmError::Node { .. } => AppError::Invalid(e.to_string()),
            SwarmError::NotManager(_) | SwarmError::Api(_) | SwarmError::Service { .. } => AppError::Unavailable(e.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl ClusterApi for Services {
    async fn cluster_view(&self, who: &Principal) -> Result<ClusterView, AppError> {
        require(who, Role::Viewer, "reading the cluster")?;
        let mut v = ClusterView {
            backend: match self.config.runtime.backend {
                Backend::Engine => "engine".into(),
                Backend::Swarm => "swarm".into(),
            },
            endpoint: self.runtime.endpoint().to_string(),
            project: self.config.stack.project.clone(),
            error: None,
            swarm: None,
            running: self.locks.running(),
        };
        match &self.swarm {
            Err(e) => v.error = Some(e.clone()),
            Ok(s) => match s.status().await {
                Ok(st) => v.swarm = Some(st),
                Err(e) => v.error = Some(e.to_string()),
            },
        }
        Ok(v)
    }

    async fn node_action(&self, who: &Principal, node: &str, verb: NodeVerb) -> Result<String, AppError> {
        let lock = format!("node:{node}");
        let what = format!("{} a node", verb.as_str());
        let audit = format!("node.{}", verb.as_str());
        let act = Act { role: Role::Operator, what: &what, lock: &lock, verb: verb.as_str(), audit: &audit, target: node };
        let feed = lock.clone();
        self.guarded(who, act, |_guard| async move {
            let swarm = self.swarm.clone().map_err(|e| AppError::Unavailable(format!("node {node}: {e}")))?;
            let done = swarm.set_availability(node, verb).await?;
            self.emit(&feed, "action", format!("{}: {done}", who.user));
            Ok(done)
        })
        .await
    }
}
