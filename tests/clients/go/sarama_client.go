// sarama_client drives facade gateway with Sarama (Shopify/sarama, Debian's
// golang-github-shopify-sarama-dev) for tests/test_gateway_polyglot.py.
//
//	sarama_client BOOTSTRAP create TOPIC PARTITIONS
//	sarama_client BOOTSTRAP metadata TOPIC
//	sarama_client BOOTSTRAP produce TOPIC COUNT [idempotent]   keyed records k<i>/v<i> with headers
//	sarama_client BOOTSTRAP produce-keys TOPIC KEY...          one record per key, murmur2 partitioner
//	sarama_client BOOTSTRAP consume TOPIC PARTITION OFFSET COUNT
//	sarama_client BOOTSTRAP group GROUP TOPIC                  a group member until stdin closes
//
// Every result is a JSON object on its own line on stdout; errors go to stderr with exit status 1.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

var out = json.NewEncoder(os.Stdout)
var outLock sync.Mutex

func emit(v interface{}) {
	outLock.Lock()
	defer outLock.Unlock()
	if err := out.Encode(v); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sarama_client:", err)
	os.Exit(1)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail(err)
	}
	return n
}

// murmur2 is Kafka's 32-bit murmur2 (seed 0x9747b28c) as a hash.Hash32, so that Sarama's
// hash partitioner with WithAbsFirst computes Java's toPositive(murmur2(key)) % partitions.
// Sarama 1.22 ships FNV-1a partitioners only.
type murmur2 struct{ data []byte }

func newMurmur2() hash.Hash32 { return &murmur2{} }

func (m *murmur2) Write(p []byte) (int, error) { m.data = append(m.data, p...); return len(p), nil }
func (m *murmur2) Reset()                      { m.data = m.data[:0] }
func (m *murmur2) Size() int                   { return 4 }
func (m *murmur2) BlockSize() int              { return 4 }
func (m *murmur2) Sum(b []byte) []byte {
	s := m.Sum32()
	return append(b, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}

func (m *murmur2) Sum32() uint32 {
	const mul uint32 = 0x5bd1e995
	data := m.data
	n := len(data)
	h := uint32(0x9747b28c) ^ uint32(n)
	i := 0
	for ; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= mul
		k ^= k >> 24
		k *= mul
		h = h*mul ^ k
	}
	switch n - i {
	case 3:
		h ^= uint32(data[i+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[i+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[i])
		h *= mul
	}
	h ^= h >> 13
	h *= mul
	h ^= h >> 15
	return h
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "sarama-polyglot"
	// Produce v3, Fetch v4, Metadata v5, CreateTopics v2: inside the gateway's ranges.
	c.Version = sarama.V2_0_0_0
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Partitioner = sarama.NewCustomPartitioner(sarama.WithAbsFirst(), sarama.WithCustomHashFunction(newMurmur2))
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	// A retention makes Sarama 1.22 commit with OffsetCommit v2; without one it sends v1, which
	// Kafka 4 (and so the gateway) no longer answers.
	c.Consumer.Offsets.Retention = 24 * time.Hour
	c.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 10 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	c.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
	return c
}

type record struct {
	Event       string            `json:"event"`
	Topic       string            `json:"topic"`
	Partition   int32             `json:"partition"`
	Offset      int64             `json:"offset"`
	Key         *string           `json:"key"`
	Value       *string           `json:"value"`
	Headers     map[string]string `json:"headers"`
	TimestampMs int64             `json:"timestamp_ms"`
}

func toRecord(m *sarama.ConsumerMessage) record {
	r := record{Event: "record", Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Headers: map[string]string{}, TimestampMs: m.Timestamp.UnixNano() / int64(time.Millisecond)}
	if m.Key != nil {
		k := string(m.Key)
		r.Key = &k
	}
	if m.Value != nil {
		v := string(m.Value)
		r.Value = &v
	}
	for _, h := range m.Headers {
		r.Headers[string(h.Key)] = string(h.Value)
	}
	return r
}

func create(addrs []string, topic string, partitions int) {
	admin, err := sarama.NewClusterAdmin(addrs, config())
	if err != nil {
		fail(err)
	}
	defer admin.Close()
	detail := &sarama.TopicDetail{NumPartitions: int32(partitions), ReplicationFactor: 1}
	if err := admin.CreateTopic(topic, detail, false); err != nil {
		fail(err)
	}
	emit(map[string]interface{}{"created": topic})
}

func metadata(addrs []string, topic string) {
	client, err := sarama.NewClient(addrs, config())
	if err != nil {
		fail(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		fail(err)
	}
	leaders := map[string]string{}
	for _, p := range parts {
		b, err := client.Leader(topic, p)
		if err != nil {
			fail(err)
		}
		leaders[strconv.Itoa(int(p))] = b.Addr()
	}
	var brokers []string
	for _, b := range client.Brokers() {
		brokers = append(brokers, b.Addr())
	}
	emit(map[string]interface{}{"topic": topic, "partitions": parts, "leaders": leaders, "brokers": brokers})
}

func produce(addrs []string, topic string, messages []*sarama.ProducerMessage, idempotent bool) {
	c := config()
	if idempotent {
		c.Producer.Idempotent = true
		c.Net.MaxOpenRequests = 1
	}
	producer, err := sarama.NewSyncProducer(addrs, c)
	if err != nil {
		fail(err)
	}
	defer producer.Close()
	if err := producer.SendMessages(messages); err != nil {
		fail(err)
	}
	for _, m := range messages {
		key, _ := m.Key.Encode()
		emit(map[string]interface{}{"key": string(key), "partition": m.Partition, "offset": m.Offset})
	}
}

func produceCount(addrs []string, topic string, count int, idempotent bool) {
	var messages []*sarama.ProducerMessage
	base := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < count; i++ {
		messages = append(messages, &sarama.ProducerMessage{
			Topic: topic,
			Key:   sarama.StringEncoder("k" + strconv.Itoa(i)),
			Value: sarama.StringEncoder("v" + strconv.Itoa(i)),
			Headers: []sarama.RecordHeader{
				{Key: []byte("source"), Value: []byte("sarama")},
				{Key: []byte("n"), Value: []byte(strconv.Itoa(i))},
			},
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		})
	}
	produce(addrs, topic, messages, idempotent)
}

func produceKeys(addrs []string, topic string, keys []string) {
	var messages []*sarama.ProducerMessage
	for _, k := range keys {
		messages = append(messages, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(k), Value: sarama.StringEncoder("x")})
	}
	produce(addrs, topic, messages, false)
}

func consume(addrs []string, topic string, partition int32, offset int64, count int) {
	consumer, err := sarama.NewConsumer(addrs, config())
	if err != nil {
		fail(err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, partition, offset)
	if err != nil {
		fail(err)
	}
	defer pc.Close()
	timeout := time.After(20 * time.Second)
	for got := 0; got < count; got++ {
		select {
		case m := <-pc.Messages():
			emit(toRecord(m))
		case err := <-pc.Errors():
			fail(err)
		case <-timeout:
			fail(fmt.Errorf("timed out after %d of %d records", got, count))
		}
	}
}

// member reports each assignment and record, and marks every record it read (Sarama commits
// marked offsets every CommitInterval and when the session ends).
type member struct{}

func (member) Setup(s sarama.ConsumerGroupSession) error {
	var parts []string
	for topic, ps := range s.Claims() {
		for _, p := range ps {
			parts = append(parts, topic+"/"+strconv.Itoa(int(p)))
		}
	}
	sort.Strings(parts)
	emit(map[string]interface{}{"event": "assigned", "generation": s.GenerationID(), "member": s.MemberID(), "partitions": parts})
	return nil
}

func (member) Cleanup(s sarama.ConsumerGroupSession) error {
	emit(map[string]interface{}{"event": "revoked", "generation": s.GenerationID()})
	return nil
}

func (member) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		emit(toRecord(m))
		s.MarkMessage(m, "sarama")
	}
	return nil
}

func group(addrs []string, groupID, topic string) {
	g, err := sarama.NewConsumerGroup(addrs, groupID, config())
	if err != nil {
		fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for err := range g.Errors() {
			fmt.Fprintln(os.Stderr, "sarama_client: group error:", err)
		}
	}()
	go func() {
		// stdin closing is the signal to leave the group cleanly.
		bufio.NewReader(os.Stdin).ReadString('\n')
		cancel()
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{topic}, member{}); err != nil {
				fmt.Fprintln(os.Stderr, "sarama_client: consume:", err)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	<-done
	if err := g.Close(); err != nil {
		fail(err)
	}
	emit(map[string]interface{}{"event": "closed"})
}

func main() {
	if len(os.Args) < 4 {
		fail(fmt.Errorf("usage: sarama_client BOOTSTRAP COMMAND ARGS..."))
	}
	addrs, cmd, args := []string{os.Args[1]}, os.Args[2], os.Args[3:]
	switch cmd {
	case "create":
		create(addrs, args[0], atoi(args[1]))
	case "metadata":
		metadata(addrs, args[0])
	case "produce":
		produceCount(addrs, args[0], atoi(args[1]), len(args) > 2 && args[2] == "idempotent")
	case "produce-keys":
		produceKeys(addrs, args[0], args[1:])
	case "consume":
		consume(addrs, args[0], int32(atoi(args[1])), int64(atoi(args[2])), atoi(args[3]))
	case "group":
		group(addrs, args[0], args[1])
	default:
		fail(fmt.Errorf("unknown command %q", cmd))
	}
}
