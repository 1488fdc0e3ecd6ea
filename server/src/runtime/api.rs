//! What the Overview, Services, Topology and Logs pages ask of the runtime.
use std::time::Duration;

use app::{
    api::{EngineStatus, LogLine, Principal, Role, StackOverview, StackVerb},
    backend::{EngineApi, StackApi},
    error::AppError,
};

use super::{compose::ComposeFile, supervisor::SupervisorError};
use crate::{
    actions::STACK,
    state::{require, Act, Services},
};

impl From<SupervisorError> for AppError {
    fn from(e: SupervisorError) -> Self {
        match e {
            SupervisorError::UnknownService(_) => AppError::NotFound(e.to_string()),
            SupervisorError::Compose(_) => AppError::Invalid(e.to_string()),
            SupervisorError::NoEngine(_) | SupervisorError::Docker(_) | SupervisorError::Service { .. } => AppError::Unavailable(e.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl EngineApi for Services {
    async fn engine_status(&self, who: &Principal) -> Result<EngineStatus, AppError> {
        require(who, Role::Viewer, "reading the engine status")?;
        let s = self.runtime.engine_status().await;
        self.metrics.observe_engine(s.reachable());
        Ok(s)
    }
}

#[async_trait::async_trait]
impl StackApi for Services {
    async fn stack_overview(&self, who: &Principal) -> Result<StackOverview, AppError> {
        require(who, Role::Viewer, "reading the stack")?;
        let mut o = StackOverview {
            project: self.config.stack.project.clone(),
            compose_files: self.config.stack.compose.iter().map(|p| p.display().to_string()).collect(),
            error: None,
            services: vec![],
            waves: vec![],
            running: self.locks.running(),
            recent_events: self.recent_events(50),
        };
        if let Ok(swarm) = &self.swarm {
            // The swarm backend: the same page from the services' tasks.
            let file = match ComposeFile::load(&self.config.stack.compose) {
                Err(e) => {
                    o.error = Some(e.to_string());
                    return Ok(o);
                }
                Ok((file, _)) => file,
            };
            o.waves = file.start_order().unwrap_or_default();
            match swarm.service_statuses(&file).await {
                Ok(s) => o.services = s,
                Err(e) => o.error = Some(e.to_string()),
            }
            return Ok(o);
        }
        match &self.stack {
            Err(e) => o.error = Some(e.clone()),
            Ok(sup) => {
                o.waves = sup.compose().start_order().unwrap_or_default();
                match sup.status().await {
                    Ok(s) => o.services = s,
                    Err(e) => o.error = Some(e.to_string()),
                }
            }
        }
        Ok(o)
    }

    async fn stack_action(&self, who: &Principal, verb: StackVerb, service: Option<String>) -> Result<String, AppError> {
        let action = verb.as_str();
        let whole = matches!(verb, StackVerb::Up | StackVerb::Down);
        let target = match (&service, whole) {
            (Some(s), false) => s.clone(),
            _ => STACK.to_string(),
        };
        let audit = if whole { format!("stack.{action}") } else { format!("service.{action}") };
        let what = format!("{action} on the stack");
        let act = Act { role: Role::Operator, what: &what, lock: &target, verb: action, audit: &audit, target: &target };
        let service_name = target.clone();
        self.guarded(who, act, |guard| async move {
            let target = service_name;
            if let Ok(swarm) = self.swarm.clone() {
                return self.swarm_action(swarm, guard, who, verb, service).await;
            }
            let sup = self.supervisor()?;
            let actor = who.user.clone();
            if whole {
                // Minutes of work: run it in the background, report through the event feed.
                sup.emit("*", "action", format!("{actor}: {action} started"));
                let store = self.store.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    let r = if verb == StackVerb::Up { sup.up().await } else { sup.down(false).await };
                    let (outcome, msg) = match &r {
                        Ok(()) => ("ok".to_string(), format!("{actor}: {action} finished")),
                        Err(e) => (format!("error: {e}"), format!("{actor}: {action} failed: {e}")),
                    };
                    sup.emit("*", if r.is_ok() { "action" } else { "failed" }, msg);
                    if let Err(e) = store.audit(&actor, &format!("stack.{action}.finished"), STACK, &outcome, serde_json::json!({})).await {
                        tracing::error!(error = %e, "audit write failed");
                    }
                });
                return Ok(format!("{action} started"));
            }
            match &service {
                None => return Err(AppError::Invalid(format!("{action} needs a service"))),
                Some(s) if !sup.compose().services.contains_key(s) => return Err(AppError::NotFound(format!("unknown service {s:?}"))),
                Some(_) => {}
            }
            sup.emit(&target, "action", format!("{actor}: {action}"));
            match verb {
                StackVerb::Start => sup.start(&target).await?,
                StackVerb::Stop => sup.stop(&target).await?,
                _ => sup.restart(&target).await?,
            }
            Ok(format!("{target}: {action} done"))
        })
        .await
    }

    async fn service_logs(&self, who: &Principal, service: &str, tail: usize) -> Result<Vec<String>, AppError> {
        require(who, Role::Viewer, "reading logs")?;
        if let Ok(swarm) = &self.swarm {
            return Ok(swarm.logs(service, tail.clamp(1, 2000)).await?);
        }
        Ok(self.supervisor()?.logs(service, tail.clamp(1, 2000)).await?)
    }

    async fn merged_logs(&self, who: &Principal, tail: usize) -> Result<Vec<LogLine>, AppError> {
        require(who, Role::Viewer, "reading logs")?;
        if let Ok(swarm) = &self.swarm {
            return Ok(swarm.merged_logs(tail.clamp(1, 500)).await?);
        }
        Ok(self.supervisor()?.merged_logs(tail.clamp(1, 500)).await)
    }
}

impl Services {
    /// A Services-page action with the swarm backend: `up` and `down` in the background
    /// (progress in the server's log, the outcome audited), start and stop as a scale to 1
    /// or 0 replicas, restart as a forced update.
    async fn swarm_action(
        &self,
        swarm: std::sync::Arc<super::swarm::SwarmStack>,
        guard: crate::actions::ActionGuard,
        who: &Principal,
        verb: StackVerb,
        service: Option<String>,
    ) -> Result<String, AppError> {
        let action = verb.as_str();
        if matches!(verb, StackVerb::Up | StackVerb::Down) {
            let (store, actor) = (self.store.clone(), who.user.clone());
            tokio::spawn(async move {
                let _guard = guard;
                let progress = |service: &str, message: &str| tracing::info!(service, message, "swarm {action}");
                let r = if verb == StackVerb::Up { swarm.up(&progress).await } else { swarm.down(&progress).await };
                let outcome = match &r {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("error: {e}"),
                };
                if let Err(e) = store.audit(&actor, &format!("stack.{action}.finished"), STACK, &outcome, serde_json::json!({ "backend": "swarm" })).await {
                    tracing::error!(error = %e, "audit write failed");
                }
            });
            return Ok(format!("{action} started on the swarm"));
        }
        let Some(service) = service else { return Err(AppError::Invalid(format!("{action} needs a service"))) };
        let (file, _) = ComposeFile::load(&self.config.stack.compose).map_err(|e| AppError::Invalid(e.to_string()))?;
        if !file.services.contains_key(&service) {
            return Err(AppError::NotFound(format!("unknown service {service:?}")));
        }
        Ok(match verb {
            StackVerb::Start => swarm.set_replicas(&service, 1).await?,
            StackVerb::Stop => swarm.set_replicas(&service, 0).await?,
            _ => swarm.force_update(&service).await?,
        })
    }

    /// Follows every service's logs into one channel, re-attaching after restarts; the
    /// followers stop as soon as the receiver is dropped (the browser went away), even on a
    /// quiet container, and at shutdown.
    pub fn follow_all_logs(&self, who: &Principal) -> Result<tokio::sync::mpsc::Receiver<app::api::LogLine>, AppError> {
        use futures_util::StreamExt;
        require(who, Role::Viewer, "reading logs")?;
        let sup = self.supervisor()?;
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        for service in sup.compose().services.keys().cloned() {
            let (sup, tx, shutdown) = (sup.clone(), tx.clone(), self.shutdown.clone());
            tokio::spawn(async move {
                let follow = async {
                    loop {
                        let mut s = std::pin::pin!(sup.follow_logs(&service));
                        while let Some(line) = s.next().await {
                            if tx.send(line).await.is_err() {
                                return;
                            }
                        }
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                };
                tokio::select! {
                    _ = follow => {}
                    _ = tx.closed() => {}
                    _ = shutdown.cancelled() => {}
                }
            });
        }
        Ok(rx)
    }
}
