package bss.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;

/**
 * The bench baseline: bss-customer-analytics or bss-order-processor as a Kafka Streams
 * topology, the same transform as server/src/streams/events.rs (CloudEvents in, CloudEvents
 * out with causationid / causationtime, malformed to the DLQ), at_least_once.
 *
 * Usage: KStreamsBench BROKERS customer|order INPUT OUTPUT DLQ APPLICATION_ID
 * Prints "running" once the streams thread runs; stops on SIGTERM.
 */
public final class KStreamsBench {
  static final ObjectMapper JSON = new ObjectMapper();

  /** Returns the output event, or null with the reason in err[0] (goes to the DLQ). */
  interface Transform { ObjectNode apply(JsonNode in, String[] err); }

  static ObjectNode output(String processor, String type, JsonNode in, ObjectNode data) {
    long now = System.currentTimeMillis();
    ObjectNode out = JSON.createObjectNode();
    out.put("specversion", "1.0");
    out.put("id", processor + ":" + in.get("id").asText());
    out.put("source", "/bss/" + processor);
    out.put("type", type);
    out.put("time", Instant.ofEpochMilli(now).toString());
    if (in.hasNonNull("subject")) out.set("subject", in.get("subject"));
    out.put("datacontenttype", "application/json");
    out.set("data", data);
    out.put("causationid", in.get("id").asText());
    if (in.hasNonNull("time")) out.set("causationtime", in.get("time"));
    return out;
  }

  static boolean validEnvelope(JsonNode in, String[] err) {
    for (String a : new String[] {"specversion", "id", "source", "type"}) {
      JsonNode v = in.get(a);
      if (v == null || !v.isTextual() || v.asText().isEmpty()) { err[0] = "missing CloudEvents attribute " + a; return false; }
    }
    return true;
  }

  static Transform customer(long windowMs) {
    Map<String, Long> perCustomer = new HashMap<>();
    Map<String, Long> tallies = new HashMap<>();
    long[] windowStart = {0};
    return (in, err) -> {
      if (!validEnvelope(in, err)) return null;
      String type = in.get("type").asText();
      if (!type.startsWith("bss.customer.")) { err[0] = "unknown customer event type " + type; return null; }
      JsonNode c = in.path("data").path("customer_id");
      if (!c.isTextual() || c.asText().isEmpty()) { err[0] = "data.customer_id missing"; return null; }
      long at = System.currentTimeMillis();
      try { at = Instant.parse(in.path("time").asText()).toEpochMilli(); } catch (Exception e) { /* processing time */ }
      long w = at - at % windowMs;
      if (w > windowStart[0]) { windowStart[0] = w; tallies.clear(); }
      tallies.merge(type, 1L, Long::sum);
      long n = perCustomer.merge(c.asText(), 1L, Long::sum);
      ObjectNode d = JSON.createObjectNode();
      d.put("customer_id", c.asText());
      d.put("event_type", type);
      d.put("customer_event_count", n);
      d.put("window_start", Instant.ofEpochMilli(windowStart[0]).toString());
      d.put("window_ms", windowMs);
      d.set("window_tallies", JSON.valueToTree(tallies));
      return output("bss-customer-analytics", "bss.analytics.customer_activity", in, d);
    };
  }

  static Transform order() {
    Map<String, String> states = new HashMap<>();
    return (in, err) -> {
      if (!validEnvelope(in, err)) return null;
      String type = in.get("type").asText();
      String to = switch (type) {
        case "bss.order.placed" -> "placed";
        case "bss.order.paid" -> "paid";
        case "bss.order.fulfilled" -> "fulfilled";
        case "bss.order.cancelled" -> "cancelled";
        default -> null;
      };
      if (to == null) { err[0] = "unknown order event type " + type; return null; }
      JsonNode d = in.path("data");
      String id = d.path("order_id").asText("");
      if (id.isEmpty()) { err[0] = "data.order_id missing"; return null; }
      Double total = null;
      if (to.equals("placed")) {
        JsonNode items = d.path("items");
        if (!items.isArray() || items.isEmpty()) { err[0] = "order.placed needs a non-empty data.items"; return null; }
        double sum = 0;
        for (JsonNode it : items) {
          long q = it.path("qty").asLong(0);
          double p = it.path("unit_price").asDouble(-1);
          if (q <= 0 || p < 0) { err[0] = "items need qty > 0 and unit_price >= 0"; return null; }
          sum += q * p;
        }
        total = Math.round(sum * 100.0) / 100.0;
      }
      String from = states.put(id, to);
      ObjectNode o = JSON.createObjectNode();
      o.put("order_id", id);
      o.set("customer_id", d.get("customer_id"));
      if (from == null) o.putNull("from"); else o.put("from", from);
      o.put("to", to);
      if (total == null) o.putNull("total"); else o.put("total", total);
      o.put("currency", d.path("currency").asText("EUR"));
      return output("bss-order-processor", "bss.analytics.order_state", in, o);
    };
  }

  static byte[] tag(byte t, byte[] v) {
    byte[] out = new byte[v.length + 1];
    out[0] = t;
    System.arraycopy(v, 0, out, 1, v.length);
    return out;
  }

  static byte[] untag(byte[] v) { return java.util.Arrays.copyOfRange(v, 1, v.length); }

  public static void main(String[] args) throws Exception {
    if (args.length != 6) {
      System.err.println("usage: KStreamsBench BROKERS customer|order INPUT OUTPUT DLQ APPLICATION_ID");
      System.exit(2);
    }
    String brokers = args[0], kind = args[1], input = args[2], output = args[3], dlq = args[4], appId = args[5];
    Transform t = kind.equals("customer") ? customer(60_000) : order();
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
    p.put(StreamsConfig.producerPrefix("enable.idempotence"), "true");
    p.put(StreamsConfig.producerPrefix("acks"), "all");
    p.put(StreamsConfig.producerPrefix("linger.ms"), "5");
    p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    StreamsBuilder b = new StreamsBuilder();
    KStream<byte[], byte[]> in = b.stream(input, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()));
    // One processor decides output or DLQ and tags the value with one leading byte (1 = output,
    // 0 = DLQ, the reason in an `error` header); a branch splits on it and strips the tag.
    KStream<byte[], byte[]> tagged = in.processValues(() -> new FixedKeyProcessor<byte[], byte[], byte[]>() {
      FixedKeyProcessorContext<byte[], byte[]> ctx;
      public void init(FixedKeyProcessorContext<byte[], byte[]> c) { ctx = c; }
      public void process(FixedKeyRecord<byte[], byte[]> r) {
        String[] err = {null};
        ObjectNode out = null;
        byte[] value = r.value() == null ? new byte[0] : r.value();
        try { out = t.apply(JSON.readTree(value), err); } catch (Exception e) { err[0] = "not JSON: " + e.getMessage(); }
        if (out != null) {
          try { ctx.forward(r.withValue(tag((byte) 1, JSON.writeValueAsBytes(out)))); } catch (Exception e) { throw new RuntimeException(e); }
        } else {
          r.headers().add("error", String.valueOf(err[0]).getBytes());
          ctx.forward(r.withValue(tag((byte) 0, value)));
        }
      }
    });
    Produced<byte[], byte[]> bytes = Produced.with(Serdes.ByteArray(), Serdes.ByteArray());
    tagged.split()
        .branch((k, v) -> v[0] == 1, Branched.withConsumer(s -> s.mapValues(KStreamsBench::untag).to(output, bytes)))
        .defaultBranch(Branched.withConsumer(s -> s.mapValues(KStreamsBench::untag).to(dlq, bytes)));
    KafkaStreams streams = new KafkaStreams(b.build(), p);
    CountDownLatch done = new CountDownLatch(1);
    streams.setStateListener((n, o) -> {
      if (n == KafkaStreams.State.RUNNING) System.out.println("running");
      if (n == KafkaStreams.State.ERROR || n == KafkaStreams.State.NOT_RUNNING) done.countDown();
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> { streams.close(); done.countDown(); }));
    streams.start();
    done.await();
  }
}
