// Command fastsource-kfake runs franz-go's kfake, an in-process Kafka cluster written in Go, on loopback
// for fastsource's tests, and lets the test that started it stage protocol faults on demand.
//
// Usage: fastsource-kfake -ports 21300,21301,21302 [-config message.max.bytes=8388608 ...]
//
// Once every broker listens, it writes one JSON line to stdout: {"ready": true, "addresses": [...]}.
// Then it reads commands from stdin, one JSON object per line, and answers each with one JSON line
// ({"ok": true, ...} or {"ok": false, "error": "..."}). It closes the cluster and exits when stdin
// closes (its parent went away) or on SIGTERM/SIGINT.
//
// Commands ("op"):
//
//	fault   {"key": "Fetch", "topic": "t", "partitions": [0], "group": "g", "error": "OFFSET_OUT_OF_RANGE",
//	         "count": 1, "top_level": false, "min_fetch_offset": 10}  -> {"id": n}
//	        answers matching requests with the error instead of the real answer (count -1: until
//	        removed); min_fetch_offset limits a Fetch fault to fetches of the partitions at or past it.
//	delay   {"key": "ListOffsets", "topic": "t", "ms": 2000, "count": 1} -> {"id": n}
//	        holds the next count requests of the key (ListOffsets: naming the topic, if given) for ms
//	        milliseconds, then lets the cluster answer them.
//	hits    {"id": n} -> {"hits": k}: requests a fault or delay has acted on so far.
//	remove  {"id": n}: uninstalls a fault, or ends a delay.
//	leader  {"topic": "t", "partition": 0} -> {"leader": node}
//	move    {"topic": "t", "partition": 0} -> {"leader": node}: moves the partition's leadership to
//	        the next broker (a leader change, with a new leader epoch).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type command struct {
	Op             string  `json:"op"`
	ID             int     `json:"id"`
	Key            string  `json:"key"`
	Topic          string  `json:"topic"`
	Partition      int32   `json:"partition"`
	Partitions     []int32 `json:"partitions"`
	Group          string  `json:"group"`
	Error          string  `json:"error"`
	Count          int     `json:"count"`
	TopLevel       bool    `json:"top_level"`
	MinFetchOffset *int64  `json:"min_fetch_offset"`
	Ms             int     `json:"ms"`
}

// delay is an installed "delay" command: the requests it held so far, and whether it still holds.
type delay struct {
	mu     sync.Mutex
	hits   int
	left   int // -1: until removed
	active bool
}

type server struct {
	cluster *kfake.Cluster
	nodes   []int32
	mu      sync.Mutex
	nextID  int
	faults  map[int]*kfake.FaultHandle
	delays  map[int]*delay
}

func keyByName(name string) (kmsg.Key, error) {
	for i := int16(0); i < 200; i++ {
		if k := kmsg.Key(i); k.Name() != "" && strings.EqualFold(k.Name(), name) {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown request key %q (use a Kafka API name such as Fetch, ListOffsets, OffsetCommit)", name)
}

func errorByName(name string) (*kerr.Error, error) {
	aliases := map[string]string{"NOT_LEADER_OR_FOLLOWER": "NOT_LEADER_FOR_PARTITION"}
	if alias, ok := aliases[strings.ToUpper(name)]; ok {
		name = alias
	}
	if code, err := strconv.Atoi(name); err == nil {
		if e := kerr.TypedErrorForCode(int16(code)); e != nil {
			return e, nil
		}
	}
	for code := int16(-1); code < 300; code++ {
		if e := kerr.TypedErrorForCode(code); e != nil && strings.EqualFold(e.Message, name) {
			return e, nil
		}
	}
	return nil, fmt.Errorf("unknown Kafka error %q", name)
}

// fetchesAtOrPast is a Fault's When filter: a fetch of one of the partitions of topic (by name or id)
// at or past offset min.
func fetchesAtOrPast(topic string, topicID [16]byte, partitions []int32, min int64) func(kmsg.Request) bool {
	return func(req kmsg.Request) bool {
		fetch, ok := req.(*kmsg.FetchRequest)
		if !ok {
			return false
		}
		for _, t := range fetch.Topics {
			if t.Topic != topic && (t.TopicID != topicID || topicID == [16]byte{}) {
				continue
			}
			for _, p := range t.Partitions {
				if p.FetchOffset < min {
					continue
				}
				if len(partitions) == 0 {
					return true
				}
				for _, want := range partitions {
					if want == p.Partition {
						return true
					}
				}
			}
		}
		return false
	}
}

// listsOffsetsOf is whether a request is a ListOffsets naming the topic ("": any ListOffsets).
func listsOffsetsOf(req kmsg.Request, topic string) bool {
	r, ok := req.(*kmsg.ListOffsetsRequest)
	if !ok {
		return false
	}
	for _, t := range r.Topics {
		if topic == "" || t.Topic == topic {
			return true
		}
	}
	return topic == ""
}

func (s *server) fault(c command) (map[string]any, error) {
	key, err := keyByName(c.Key)
	if err != nil {
		return nil, err
	}
	kerrValue, err := errorByName(c.Error)
	if err != nil {
		return nil, err
	}
	f := kfake.Fault{
		Keys:       []kmsg.Key{key},
		Topic:      c.Topic,
		Partitions: c.Partitions,
		Group:      c.Group,
		TopLevel:   c.TopLevel,
		Err:        kerrValue,
		Count:      c.Count,
	}
	if c.MinFetchOffset != nil {
		if key != kmsg.Fetch || c.Topic == "" {
			return nil, fmt.Errorf("min_fetch_offset needs key Fetch and a topic")
		}
		info := s.cluster.TopicInfo(c.Topic)
		if info == nil {
			return nil, fmt.Errorf("topic %q does not exist", c.Topic)
		}
		// The When filter sees the raw request, which names topics by id only from Fetch v13 on.
		f.When = fetchesAtOrPast(c.Topic, info.TopicID, c.Partitions, *c.MinFetchOffset)
	}
	handle := s.cluster.Fault(f)
	return s.register(func(id int) { s.faults[id] = handle }), nil
}

// register files an installed fault or delay under a new id, the answer to its command.
func (s *server) register(file func(id int)) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	file(s.nextID)
	return map[string]any{"id": s.nextID}
}

func (s *server) delay(c command) (map[string]any, error) {
	key, err := keyByName(c.Key)
	if err != nil {
		return nil, err
	}
	if c.Ms <= 0 {
		return nil, fmt.Errorf("delay needs ms > 0")
	}
	if c.Topic != "" && key != kmsg.ListOffsets {
		return nil, fmt.Errorf("a delay selects by topic on ListOffsets only")
	}
	d := &delay{left: c.Count, active: true}
	if d.left == 0 {
		d.left = 1
	}
	hold := time.Duration(c.Ms) * time.Millisecond
	s.cluster.ControlKey(key.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		d.mu.Lock()
		if !d.active || d.left == 0 {
			d.mu.Unlock()
			s.cluster.DropControl()
			return nil, nil, false
		}
		if key == kmsg.ListOffsets && !listsOffsetsOf(req, c.Topic) {
			d.mu.Unlock()
			return nil, nil, false
		}
		d.hits++
		if d.left > 0 {
			d.left--
		}
		d.mu.Unlock()
		s.cluster.SleepControl(func() { time.Sleep(hold) })
		return nil, nil, false // the cluster answers it now, late
	})
	return s.register(func(id int) { s.delays[id] = d }), nil
}

func (s *server) handle(c command) (map[string]any, error) {
	switch c.Op {
	case "fault":
		return s.fault(c)
	case "delay":
		return s.delay(c)
	case "hits", "remove":
		s.mu.Lock()
		handle, isFault := s.faults[c.ID]
		d, isDelay := s.delays[c.ID]
		s.mu.Unlock()
		switch {
		case isFault && c.Op == "hits":
			return map[string]any{"hits": handle.Hits()}, nil
		case isFault:
			handle.Remove()
			return map[string]any{}, nil
		case isDelay:
			d.mu.Lock()
			defer d.mu.Unlock()
			if c.Op == "remove" {
				d.active = false
			}
			return map[string]any{"hits": d.hits}, nil
		}
		return nil, fmt.Errorf("no fault or delay with id %d", c.ID)
	case "leader":
		leader := s.cluster.LeaderFor(c.Topic, c.Partition)
		if leader < 0 {
			return nil, fmt.Errorf("partition %s[%d] does not exist", c.Topic, c.Partition)
		}
		return map[string]any{"leader": leader}, nil
	case "move":
		leader := s.cluster.LeaderFor(c.Topic, c.Partition)
		if leader < 0 {
			return nil, fmt.Errorf("partition %s[%d] does not exist", c.Topic, c.Partition)
		}
		next := s.nodes[0]
		for i, n := range s.nodes {
			if n == leader {
				next = s.nodes[(i+1)%len(s.nodes)]
			}
		}
		if err := s.cluster.MoveTopicPartition(c.Topic, c.Partition, next); err != nil {
			return nil, err
		}
		return map[string]any{"leader": next}, nil
	}
	return nil, fmt.Errorf("unknown op %q", c.Op)
}

func main() {
	portsFlag := flag.String("ports", "", "comma-separated ports, one broker each, on 127.0.0.1")
	configs := map[string]string{}
	flag.Func("config", "a broker config key=value (repeatable)", func(kv string) error {
		key, value, found := strings.Cut(kv, "=")
		if !found || key == "" {
			return fmt.Errorf("want key=value, got %q", kv)
		}
		configs[key] = value
		return nil
	})
	flag.Parse()
	var ports []int
	for _, field := range strings.Split(*portsFlag, ",") {
		port, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || port < 1 || port > 65535 {
			fmt.Fprintf(os.Stderr, "fastsource-kfake: bad -ports %q: each must be a port 1-65535\n", *portsFlag)
			os.Exit(2)
		}
		ports = append(ports, port)
	}
	cluster, err := kfake.NewCluster(kfake.Ports(ports...), kfake.NumBrokers(len(ports)),
		kfake.BrokerConfigs(configs))
	if err != nil {
		fmt.Fprintf(os.Stderr, "fastsource-kfake: cannot start the cluster on ports %v: %v\n", ports, err)
		os.Exit(1)
	}
	s := &server{cluster: cluster, faults: map[int]*kfake.FaultHandle{}, delays: map[int]*delay{}}
	for i := range ports {
		s.nodes = append(s.nodes, int32(i))
	}
	out := json.NewEncoder(os.Stdout)
	var outMu sync.Mutex
	write := func(v any) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = out.Encode(v)
	}

	done := make(chan struct{})
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
		close(done)
	}()
	go func() {
		defer func() {
			select {
			case <-done:
			default:
				close(done)
			}
		}()
		write(map[string]any{"ready": true, "addresses": cluster.ListenAddrs()})
		lines := bufio.NewScanner(os.Stdin)
		for lines.Scan() {
			var c command
			var answer map[string]any
			if err := json.Unmarshal(lines.Bytes(), &c); err != nil {
				err = fmt.Errorf("not a JSON command: %v", err)
				write(map[string]any{"ok": false, "error": err.Error()})
				continue
			}
			answer, err := s.handle(c)
			if err != nil {
				write(map[string]any{"ok": false, "error": err.Error()})
				continue
			}
			answer["ok"] = true
			write(answer)
		}
	}()
	<-done
	cluster.Close()
}
