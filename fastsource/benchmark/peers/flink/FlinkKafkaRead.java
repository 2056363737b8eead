import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericRecord;
import org.apache.flink.formats.avro.AvroDeserializationSchema;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * The Flink peer of `fastsource bench --peers`: a bounded read of one topic with Flink's KafkaSource on a
 * local MiniCluster into a counting sink. Prints one JSON line like the suite's other readers.
 *
 * <p>Usage: FlinkKafkaRead BOOTSTRAP TOPIC PARALLELISM raw|json|avro [SCHEMA_FILE]. raw: values as byte[];
 * json: values parsed with Jackson into a typed POJO (the fields of the suite's JSON records); avro: values in
 * Confluent's wire format, the 5-byte header checked and stripped, the datum decoded by Flink's
 * AvroDeserializationSchema into a GenericRecord with the writer schema read from SCHEMA_FILE.
 */
public final class FlinkKafkaRead {
    static final AtomicLong RECORDS = new AtomicLong();
    static final AtomicLong BYTES = new AtomicLong();
    static final AtomicLong FIRST_NANOS = new AtomicLong();

    /** One JSON record of the suite, as typed fields. */
    public static final class Event {
        public long id;
        public long user;
        public String kind;
        public double amount;
        public long ts;
    }

    /** Value bytes as they come; counts their size. */
    static final class Raw implements DeserializationSchema<byte[]> {
        @Override public byte[] deserialize(byte[] message) {
            BYTES.addAndGet(message.length);
            return message;
        }
        @Override public boolean isEndOfStream(byte[] next) { return false; }
        @Override public TypeInformation<byte[]> getProducedType() { return TypeInformation.of(byte[].class); }
    }

    /** Value bytes parsed by Jackson into an Event. */
    static final class Json implements DeserializationSchema<Event> {
        private transient ObjectMapper mapper;
        @Override public Event deserialize(byte[] message) throws IOException {
            if (mapper == null) {
                mapper = new ObjectMapper();
            }
            BYTES.addAndGet(message.length);
            return mapper.readValue(message, Event.class);
        }
        @Override public boolean isEndOfStream(Event next) { return false; }
        @Override public TypeInformation<Event> getProducedType() { return TypeInformation.of(Event.class); }
    }

    /** Confluent-framed Avro values: magic byte 0 and a 4-byte schema id, then the datum Flink decodes. */
    static final class ConfluentAvro implements DeserializationSchema<GenericRecord> {
        private final AvroDeserializationSchema<GenericRecord> datum;

        ConfluentAvro(String schema) {
            datum = AvroDeserializationSchema.forGeneric(new Schema.Parser().parse(schema));
        }
        @Override public void open(InitializationContext context) throws Exception { datum.open(context); }
        @Override public GenericRecord deserialize(byte[] message) throws IOException {
            if (message.length < 5 || message[0] != 0) {
                throw new IOException("not in Confluent's wire format (" + message.length + " bytes)");
            }
            BYTES.addAndGet(message.length);
            return datum.deserialize(Arrays.copyOfRange(message, 5, message.length));
        }
        @Override public boolean isEndOfStream(GenericRecord next) { return false; }
        @Override public TypeInformation<GenericRecord> getProducedType() { return datum.getProducedType(); }
    }

    /** Counts records in this JVM and notes when the first one arrived. */
    static final class Counting<T> implements Sink<T> {
        @Override public SinkWriter<T> createWriter(WriterInitContext context) {
            return new SinkWriter<T>() {
                long count;
                @Override public void write(T element, Context ctx) {
                    if (count++ == 0) {
                        FIRST_NANOS.compareAndSet(0, System.nanoTime());
                    }
                }
                @Override public void flush(boolean endOfInput) {
                    RECORDS.addAndGet(count);
                    count = 0;
                }
                @Override public void close() {
                    RECORDS.addAndGet(count);
                    count = 0;
                }
            };
        }
    }

    static <T> KafkaSource<T> source(String bootstrap, String topic, DeserializationSchema<T> values) {
        return KafkaSource.<T>builder()
                .setBootstrapServers(bootstrap)
                .setTopics(topic)
                .setGroupId("fastsource-bench-flink")
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setBounded(OffsetsInitializer.latest())
                .setDeserializer(KafkaRecordDeserializationSchema.valueOnly(values))
                .build();
    }

    public static void main(String[] args) throws Exception {
        long started = System.nanoTime();
        String bootstrap = args[0], topic = args[1], format = args[3];
        int parallelism = Integer.parseInt(args[2]);
        Configuration conf = new Configuration();
        conf.set(PipelineOptions.OBJECT_REUSE, true);
        conf.set(RestOptions.BIND_ADDRESS, "127.0.0.1");
        conf.set(RestOptions.ADDRESS, "127.0.0.1");
        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(parallelism, conf);
        if (format.equals("avro")) {
            String schema = Files.readString(Path.of(args[4]));
            env.fromSource(source(bootstrap, topic, new ConfluentAvro(schema)), WatermarkStrategy.noWatermarks(),
                    "kafka").sinkTo(new Counting<>());
        } else if (format.equals("json")) {
            env.fromSource(source(bootstrap, topic, new Json()), WatermarkStrategy.noWatermarks(), "kafka")
                    .sinkTo(new Counting<>());
        } else {
            env.fromSource(source(bootstrap, topic, new Raw()), WatermarkStrategy.noWatermarks(), "kafka")
                    .sinkTo(new Counting<>());
        }
        env.execute("fastsource-bench-flink");
        long done = System.nanoTime();
        long first = FIRST_NANOS.get() == 0 ? done : FIRST_NANOS.get();
        System.out.printf("{\"messages\": %d, \"bytes\": %d, \"seconds\": %.6f, "
                + "\"seconds_from_first\": %.6f}%n",
                RECORDS.get(), BYTES.get(), (done - started) / 1e9, (done - first) / 1e9);
        System.exit(0);
    }
}
