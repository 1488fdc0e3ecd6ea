//! What the Streams page asks of the stream processors.
use app::{
    api::{Guarantee, Principal, Role, StreamsView},
    backend::StreamsApi,
    error::AppError,
};

use super::StreamsError;
use crate::state::{require, Act, Services};

impl From<StreamsError> for AppError {
    fn from(e: StreamsError) -> Self {
        match e {
            StreamsError::UnknownProcessor { .. } => AppError::NotFound(e.to_string()),
            StreamsError::AlreadyRunning { .. } | StreamsError::NotRunning(_) | StreamsError::Invalid(_) => AppError::Invalid(e.to_string()),
            StreamsError::StopTimeout(_) | StreamsError::Kafka(_) | StreamsError::NotReady(_) => AppError::Unavailable(e.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl StreamsApi for Services {
    async fn streams_view(&self, who: &Principal) -> Result<StreamsView, AppError> {
        require(who, Role::Viewer, "reading the stream processors")?;
        Ok(self.streams.view())
    }

    async fn processor_action(&self, who: &Principal, processor: &str, verb: &str) -> Result<String, AppError> {
        let (audit, what) = (format!("processor.{verb}"), format!("{verb} on a processor"));
        let act = Act { role: Role::Operator, what: &what, lock: processor, verb, audit: &audit, target: processor };
        self.guarded(who, act, |_guard| async move {
            match verb {
                "start" => self.streams.start(processor)?,
                "stop" => self.streams.stop(processor).await?,
                "restart" => self.streams.restart(processor).await?,
                _ => return Err(AppError::Invalid(format!("unknown action {verb:?} (start, stop or restart)"))),
            }
            Ok(format!("{processor}: {verb} done"))
        })
        .await
    }

    async fn set_guarantee(&self, who: &Principal, processor: &str, guarantee: &str) -> Result<String, AppError> {
        let target = format!("{processor} → {guarantee}");
        let act = Act { role: Role::Operator, what: "switching a processor's guarantee", lock: processor, verb: "guarantee", audit: "processor.guarantee", target: &target };
        self.guarded(who, act, |_guard| async move {
            let g = Guarantee::parse(guarantee).ok_or_else(|| AppError::Invalid(format!("unknown guarantee {guarantee:?} (at_least_once or exactly_once)")))?;
            let restarted = self.streams.set_guarantee(processor, g).await?;
            Ok(format!("{processor}: {}{}", g.label(), if restarted { ", restarted into it" } else { " from its next start" }))
        })
        .await
    }

    async fn send_sample_events(&self, who: &Principal, events: u64, malformed_every: u64) -> Result<String, AppError> {
        let target = format!("{events} events");
        let act = Act { role: Role::Operator, what: "producing sample events", lock: "sample-events", verb: "send", audit: "streams.send_samples", target: &target };
        self.guarded(who, act, |_guard| async move {
            let run = format!("ui-{}", crate::clock::now_ms());
            let (acked, malformed) = self.streams.send_samples(&run, events, malformed_every).await?;
            Ok(format!("{acked} events acknowledged by the brokers ({malformed} malformed on purpose), run {run}"))
        })
        .await
    }
}
