/* Baseline (a): a plain librdkafka consumer in C, linked against the librdkafka confluent-kafka ships.
 * Reads every partition of a topic from the beginning to end-of-partition and counts messages and
 * key+value bytes: the physical limit of this client on this machine.
 * With CONSUMERS > 1 it runs that many consumers on threads of one process, partition p going to
 * consumer p % CONSUMERS: the like-for-like match of a fastsource read with that many readers.
 * Usage: rdkafka_baseline BOOTSTRAP TOPIC PARTITIONS [CONSUMERS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include "rdkafka_abi.h"

/* This process's peak RSS in MB (VmHWM), as the Python readers report it. */
static double peak_rss_mb(void) {
    char line[256];
    double kb = 0;
    FILE *status = fopen("/proc/self/status", "r");
    if (!status)
        return 0;
    while (fgets(line, sizeof(line), status))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atof(line + 6);
    fclose(status);
    return kb / 1024;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value) {
    char err[512];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "%s: %s\n", name, err);
        exit(2);
    }
}

/* One consumer's share of the read: the partitions p with p % consumers == index. */
struct share {
    const char *bootstrap, *topic;
    int partitions, index, consumers;
    long long count, bytes;
    double first;
    int failed;
};

static void *consume(void *arg) {
    struct share *share = arg;
    char err[512];
    int eof = 0, mine = 0;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", share->bootstrap);
    set(conf, "group.id", "fastsource-bench-c");
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.partition.eof", "true");
    set(conf, "queued.min.messages", "200000");
    set(conf, "fetch.wait.max.ms", "100");
    set(conf, "fetch.queue.backoff.ms", "10");
    set(conf, "max.partition.fetch.bytes", "524288");
    set(conf, "reconnect.backoff.ms", "10");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "%s\n", err);
        share->failed = 1;
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(share->partitions);
    for (int p = share->index; p < share->partitions; p += share->consumers, mine++)
        rd_kafka_topic_partition_list_add(list, share->topic, p)->offset = 0; /* fresh topics: 0 is earliest */
    rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_queue_t *queue = rd_kafka_queue_get_consumer(rk);
    rd_kafka_message_t *msgs[4096];
    while (eof < mine && !share->failed) {
        ssize_t n = rd_kafka_consume_batch_queue(queue, 0, msgs, 4096);
        if (n <= 0) {
            rd_kafka_message_t *m = rd_kafka_consume_queue(queue, 100);
            if (!m)
                continue;
            msgs[0] = m;
            n = 1;
        }
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                eof++;
            else if (m->err) {
                fprintf(stderr, "error %s\n", rd_kafka_err2name(m->err));
                share->failed = 1;
            } else {
                if (!share->count)
                    share->first = now();
                share->count++;
                share->bytes += m->len + m->key_len;
            }
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_queue_destroy(queue);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s BOOTSTRAP TOPIC PARTITIONS [CONSUMERS]\n", argv[0]);
        return 2;
    }
    double started = now(), first = 0;
    int partitions = atoi(argv[3]), consumers = argc == 5 ? atoi(argv[4]) : 1;
    if (consumers < 1 || consumers > partitions) {
        fprintf(stderr, "CONSUMERS must be between 1 and PARTITIONS\n");
        return 2;
    }
    struct share *shares = calloc(consumers, sizeof(*shares));
    pthread_t *threads = calloc(consumers, sizeof(*threads));
    for (int i = 0; i < consumers; i++) {
        shares[i] = (struct share){.bootstrap = argv[1], .topic = argv[2], .partitions = partitions,
                                   .index = i, .consumers = consumers};
        if (consumers == 1)
            consume(&shares[0]); /* the single-consumer case stays on the main thread */
        else
            pthread_create(&threads[i], NULL, consume, &shares[i]);
    }
    long long count = 0, bytes = 0;
    int failed = 0;
    for (int i = 0; i < consumers; i++) {
        if (consumers > 1)
            pthread_join(threads[i], NULL);
        count += shares[i].count;
        bytes += shares[i].bytes;
        failed |= shares[i].failed;
        if (shares[i].count && (!first || shares[i].first < first))
            first = shares[i].first;
    }
    double done = now();
    free(shares);
    free(threads);
    if (failed)
        return 1;
    printf("{\"messages\": %lld, \"bytes\": %lld, \"seconds\": %.6f, \"seconds_from_first\": %.6f, "
           "\"peak_rss_mb\": %.1f}\n", count, bytes, done - started, count ? done - first : 0.0, peak_rss_mb());
    return 0;
}
