// SPDX-License-Identifier: MIT
//
// clusterhub 1.1.0 (fent/clusterhub), used as its README shows: the master owns the hub's
// EventVat database and relays events; workers call the database with a callback and emit events.
//
//   get N S    a worker calls hub.get('bench:get', cb) with N calls in flight (hub row: Get)
//   set N S    a worker calls hub.set('bench:set:<slot>', value, cb) (hub row: Set)
//   emit N S   worker 1 emits 'bench.emit.one', worker 2 (the one subscriber) counts deliveries
//              and acknowledges every 64th with a 'bench.ack' event; worker 1 keeps at most N
//              emits beyond the last acknowledgement (clusterhub's emit has no reply: this window
//              is the flow control).  ops/s = deliveries/s at the subscriber (hub row: Emit 1 sub
//              no-reply).
'use strict';

const cluster = require('cluster');
const hub = require('clusterhub');
const { VALUE, PAYLOAD, isPrimary, parseArgs, measure, masterCollect, report, nowNs } = require('./common');

const args = parseArgs(['get', 'set', 'emit']);
const ACK_EVERY = 64;

if (isPrimary) {
  hub.set('bench:get', VALUE);
  masterCollect('clusterhub', args, args.seconds + 60);
  cluster.fork({ BENCH_ROLE: 'client' });
  if (args.op === 'emit')
    cluster.fork({ BENCH_ROLE: 'subscriber' });
} else if (process.env.BENCH_ROLE === 'subscriber') {
  let count = 0, started = false;
  hub.on('bench.emit.one', (payload) => {
    started = true;
    if (payload !== PAYLOAD)
      process.exit(3);
    if (++count % ACK_EVERY === 0)
      hub.emit('bench.ack', count);
  });
  // tell the emitter we listen, until its first event arrives
  hub.ready(() => {
    const t = setInterval(() => (started ? clearInterval(t) : hub.emit('bench.subready')), 50);
    hub.emit('bench.subready');
  });
} else if (args.op === 'emit') {
  emitter();
} else {
  hub.ready(() => {
    measure(args.inflight, args.seconds, args.op === 'get' ? get : set).then(report);
  });
}

function get(slot, done) {
  hub.get('bench:get', (v) => done(v === VALUE ? null : `get: wrong value ${v}`));
}

function set(slot, done) {
  hub.set(`bench:set:${slot}`, VALUE, (ok) => done(ok === true ? null : `set: ${ok}`));
}

function emitter() {
  const window = args.inflight;
  let sent = 0, acked = 0, running = false, stopping = false;
  let warmEnd, deadline, ackedAtWarm = 0, tWarm = 0, lastAck = 0, ackedAtLast = 0;

  const pump = () => {
    while (!stopping && sent - acked < window) {
      hub.emit('bench.emit.one', PAYLOAD);
      sent++;
    }
  };
  hub.on('bench.ack', (count) => {
    const now = nowNs();
    acked = count;
    if (!tWarm && now >= warmEnd) {
      tWarm = now;
      ackedAtWarm = count;
    }
    if (tWarm) {
      lastAck = now;
      ackedAtLast = count;
    }
    if (now >= deadline)
      stopping = true;
    if (!stopping)
      pump();
    else if (acked >= sent - (sent % ACK_EVERY))
      finish();
  });
  hub.on('bench.subready', () => {
    if (running)
      return;
    running = true;
    const t = nowNs();
    warmEnd = t + Math.min(args.seconds * 0.1e9, 0.3e9);
    deadline = warmEnd + args.seconds * 1e9;
    pump();
  });
  let finished = false;
  const finish = () => {
    if (finished)
      return;
    finished = true;
    const secs = lastAck > tWarm ? (lastAck - tWarm) / 1e9 : 0;
    const ops = ackedAtLast - ackedAtWarm;
    report({ ops, errors: 0, note: '', seconds: secs, ops_per_sec: secs > 0 ? ops / secs : 0,
             deliveries_per_sec: secs > 0 ? ops / secs : 0, p50_us: null, p99_us: null });
  };
}
