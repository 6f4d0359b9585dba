// kafkajs_client drives facade gateway with KafkaJS for tests/test_gateway_polyglot.py.
//
//   node kafkajs_client.js BOOTSTRAP create TOPIC PARTITIONS
//   node kafkajs_client.js BOOTSTRAP metadata TOPIC
//   node kafkajs_client.js BOOTSTRAP produce TOPIC COUNT [idempotent]   keyed records k<i>/v<i> with headers
//   node kafkajs_client.js BOOTSTRAP produce-keys TOPIC KEY...          one record per key, default partitioner
//   node kafkajs_client.js BOOTSTRAP consume TOPIC PARTITION OFFSET COUNT
//   node kafkajs_client.js BOOTSTRAP group GROUP TOPIC                  a group member until stdin closes
//
// Every result is a JSON object on its own line on stdout; errors go to stderr with exit status 1.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, command, ...args] = process.argv.slice(2)
const kafka = new Kafka({
  clientId: 'kafkajs-polyglot',
  brokers: [bootstrap],
  logLevel: logLevel.WARN,
  retry: { initialRetryTime: 100, retries: 8 },
})

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const BASE_MS = Date.UTC(2024, 0, 2, 3, 4, 5)

function toRecord(topic, partition, m) {
  const headers = {}
  for (const [k, v] of Object.entries(m.headers || {})) headers[k] = v === null ? null : v.toString()
  return {
    event: 'record',
    topic,
    partition,
    offset: Number(m.offset),
    key: m.key === null ? null : m.key.toString(),
    value: m.value === null ? null : m.value.toString(),
    headers,
    timestamp_ms: Number(m.timestamp),
  }
}

async function create(topic, partitions) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    const created = await admin.createTopics({ topics: [{ topic, numPartitions: Number(partitions) }], waitForLeaders: true })
    emit({ created: topic, new: created })
  } finally {
    await admin.disconnect()
  }
}

async function metadata(topic) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    const cluster = await admin.describeCluster()
    emit({
      topic: topics[0].name,
      partitions: topics[0].partitions.map((p) => p.partitionId).sort((a, b) => a - b),
      leaders: Object.fromEntries(topics[0].partitions.map((p) => [p.partitionId, p.leader])),
      brokers: cluster.brokers.map((b) => `${b.host}:${b.port}`),
    })
  } finally {
    await admin.disconnect()
  }
}

async function produce(topic, messages, idempotent) {
  const producer = kafka.producer(idempotent ? { idempotent: true, maxInFlightRequests: 1 } : {})
  await producer.connect()
  try {
    const results = []
    // One send per record, so each record's partition and offset are known.
    for (const m of messages) {
      const [meta] = await producer.send({ topic, acks: -1, messages: [m] })
      results.push({ key: m.key, partition: meta.partition, offset: Number(meta.baseOffset) })
    }
    results.forEach(emit)
  } finally {
    await producer.disconnect()
  }
}

async function produceCount(topic, count, idempotent) {
  const messages = []
  for (let i = 0; i < Number(count); i++) {
    messages.push({
      key: `k${i}`,
      value: `v${i}`,
      headers: { source: 'kafkajs', n: String(i) },
      timestamp: String(BASE_MS + i),
    })
  }
  await produce(topic, messages, idempotent)
}

async function consume(topic, partition, offset, count) {
  const consumer = kafka.consumer({ groupId: `kafkajs-assign-${process.pid}`, maxWaitTimeInMs: 200 })
  await consumer.connect()
  // KafkaJS has no assign(): a group of one member, told to start at OFFSET, commits nothing.
  let got = 0
  let finish
  const done = new Promise((resolve) => { finish = resolve })
  const timer = setTimeout(() => finish(new Error(`timed out after ${got} of ${count} records`)), 20000)
  await consumer.subscribe({ topics: [topic] })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic: t, partition: p, message }) => {
      if (p !== Number(partition) || got >= Number(count)) return
      emit(toRecord(t, p, message))
      if (++got === Number(count)) finish(null)
    },
  })
  consumer.seek({ topic, partition: Number(partition), offset: String(offset) })
  const err = await done
  clearTimeout(timer)
  await consumer.disconnect()
  if (err) throw err
}

async function group(groupId, topic) {
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: 10000,
    heartbeatInterval: 500,
    rebalanceTimeout: 10000,
    maxWaitTimeInMs: 200,
  })
  const { GROUP_JOIN, CRASH } = consumer.events
  consumer.on(GROUP_JOIN, (e) => {
    const parts = []
    for (const [t, ps] of Object.entries(e.payload.memberAssignment)) for (const p of ps) parts.push(`${t}/${p}`)
    emit({ event: 'assigned', generation: e.payload.groupGenerationId, member: e.payload.memberId, partitions: parts.sort() })
  })
  consumer.on(CRASH, (e) => process.stderr.write(`kafkajs_client: crash: ${e.payload.error}\n`))
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: true,
    autoCommitThreshold: 1, // commit after every record
    eachMessage: async ({ topic: t, partition: p, message }) => emit(toRecord(t, p, message)),
  })
  // stdin closing is the signal to leave the group cleanly.
  await new Promise((resolve) => {
    process.stdin.on('end', resolve)
    process.stdin.resume()
  })
  await consumer.disconnect()
  emit({ event: 'closed' })
}

async function main() {
  switch (command) {
    case 'create': return create(args[0], args[1])
    case 'metadata': return metadata(args[0])
    case 'produce': return produceCount(args[0], args[1], args[2] === 'idempotent')
    case 'produce-keys': return produce(args[0], args.slice(1).map((key) => ({ key, value: 'x' })), false)
    case 'consume': return consume(args[0], args[1], args[2], args[3])
    case 'group': return group(args[0], args[1])
    default: throw new Error(`unknown command ${command}`)
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`kafkajs_client: ${err.stack || err}\n`)
    process.exit(1)
  },
)
