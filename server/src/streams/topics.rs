//! The topic table: partitions, leaders, watermarks, and each processor group's committed
//! offset and lag. Blocking librdkafka calls: run it on `spawn_blocking`.
use std::time::Duration;

use app::api::TopicPartitionRow;
use rdkafka::{
    config::ClientConfig,
    consumer::{BaseConsumer, Consumer},
    Offset, TopicPartitionList,
};

use super::{StreamsError, events::{ANALYTICS_TOPIC, CUSTOMER_TOPIC, DLQ_TOPIC, ORDER_TOPIC}};

const TIMEOUT: Duration = Duration::from_secs(3);

fn client(brokers: &str, group: &str) -> Result<BaseConsumer, StreamsError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| StreamsError::Kafka(format!("kafka client: {e}")))
}

/// `groups`: (group, the topic it reads). Topics: the four BSS topics plus any group's.
pub fn read(brokers: &str, groups: &[(String, String)]) -> Result<Vec<TopicPartitionRow>, StreamsError> {
    let meta_client = client(brokers, "bss-control-inspector")?;
    let mut topics: Vec<String> = [CUSTOMER_TOPIC, ORDER_TOPIC, ANALYTICS_TOPIC, DLQ_TOPIC].map(String::from).to_vec();
    for (_, t) in groups {
        if !topics.contains(t) {
            topics.push(t.clone());
        }
    }
    let mut rows = vec![];
    for topic in &topics {
        let md = meta_client.fetch_metadata(Some(topic), TIMEOUT).map_err(|e| StreamsError::Kafka(format!("metadata of {topic}: {e}")))?;
        let Some(t) = md.topics().first() else { continue };
        if t.error().is_some() {
            continue; // not created (yet)
        }
        for p in t.partitions() {
            let (low, high) = meta_client
                .fetch_watermarks(topic, p.id(), TIMEOUT)
                .map_err(|e| StreamsError::Kafka(format!("watermarks of {topic}/{}: {e}", p.id())))?;
            rows.push(TopicPartitionRow { topic: topic.clone(), partition: p.id(), leader: p.leader(), low, high, groups: vec![] });
        }
    }
    rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    for (group, topic) in groups {
        let mut tpl = TopicPartitionList::new();
        for r in rows.iter().filter(|r| &r.topic == topic) {
            tpl.add_partition(topic, r.partition);
        }
        if tpl.count() == 0 {
            continue;
        }
        let committed = client(brokers, group)?.committed_offsets(tpl, TIMEOUT).map_err(|e| StreamsError::Kafka(format!("offsets of group {group}: {e}")))?;
        for r in rows.iter_mut().filter(|r| &r.topic == topic) {
            let off = committed.find_partition(topic, r.partition).and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
            // No commit yet: the group (auto.offset.reset=earliest) has everything ahead of it.
            let lag = (r.high - off.unwrap_or(r.low)).max(0);
            r.groups.push((group.clone(), off, Some(lag)));
        }
    }
    Ok(rows)
}

/// Creates `topic` as a compacted topic (3 partitions; replication factor and
/// min.insync.replicas are the cluster's defaults — 3 and 2 in the stack) unless it exists.
///
/// The replication factor is never taken from the brokers visible at that moment: a
/// changelog created while a broker was down (a drill, a restart) would keep fewer copies
/// for good, and a state topic whose only copies stop uncleanly has no eligible leader.
/// With a broker down, creation fails (not enough brokers for the default factor) and the
/// processor retries, as Kafka Streams does with `replication.factor=-1`.
pub async fn ensure_compacted(brokers: &str, topic: &str) -> Result<(), StreamsError> {
    use rdkafka::{
        admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
        client::DefaultClientContext,
        types::RDKafkaErrorCode,
    };
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().map_err(|e| StreamsError::Kafka(format!("kafka admin client: {e}")))?;
    // Compaction only cleans closed segments: roll one a minute (the default, a week or
    // 1 GiB, left every record in the active segment, so a restore replayed every state
    // change ever made, slower each run) and clean once a tenth is dirty.
    let settings = [("cleanup.policy", "compact"), ("segment.ms", "60000"), ("min.cleanable.dirty.ratio", "0.1")];
    // -1: the broker's default.replication.factor (KIP-464).
    let mut t = NewTopic::new(topic, 3, TopicReplication::Fixed(-1));
    for (k, v) in settings {
        t = t.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin.create_topics(&[t], &opts).await.map_err(|e| StreamsError::Kafka(format!("create {topic}: {e}")))? {
        match r {
            Ok(_) => return Ok(()),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, RDKafkaErrorCode::InvalidReplicationFactor)) => {
                return Err(StreamsError::Kafka(format!(
                    "create {topic}: fewer brokers are up than the cluster's replication factor; the state topic is created when they are back"
                )))
            }
            Err((_, e)) => return Err(StreamsError::Kafka(format!("create {topic}: {e}"))),
        }
    }
    // A topic made by an earlier version: the same settings (AlterConfigs replaces the
    // topic's whole set, so all of them).
    let mut alter = rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic(topic));
    for (k, v) in settings {
        alter = alter.set(k, v);
    }
    for r in admin.alter_configs(&[alter], &opts).await.map_err(|e| StreamsError::Kafka(format!("configure {topic}: {e}")))? {
        r.map_err(|(_, e)| StreamsError::Kafka(format!("configure {topic}: {e}")))?;
    }
    Ok(())
}
