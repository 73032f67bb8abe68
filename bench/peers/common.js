// SPDX-License-Identifier: MIT
//
// What the peer benchmarks share: the argument parsing, the measuring loop (the same rule as
// clusterhub-bench's rows: INFLIGHT operations kept in flight, a warm-up of 10% of the seconds,
// at most 0.3 s, then SECONDS measured) and the one JSON line the master prints on stdout.
//
//   node bench/peers/<peer>.js OP INFLIGHT SECONDS
//
// The master forks the worker(s) with BENCH_ROLE in their environment; the measuring worker
// sends its result to the master over the plain cluster channel ({benchResult: ...}, which no
// peer library takes for its own), and the master prints it and exits.
'use strict';

const cluster = require('cluster');

const VALUE = 'value-0123456789';      // BENCH_VALUE in bench/bench.h
const PAYLOAD = 'payload-0123456789';  // BENCH_PAYLOAD

const isPrimary = cluster.isPrimary !== undefined ? cluster.isPrimary : cluster.isMaster;

function usage(ops) {
  process.stderr.write(`usage: node ${process.argv[1]} {${ops.join('|')}} INFLIGHT SECONDS\n`);
  process.exit(2);
}

function parseArgs(ops) {
  const [op, inflight, seconds] = process.argv.slice(2);
  const n = Number(inflight), s = Number(seconds);
  if (!ops.includes(op) || !Number.isInteger(n) || n < 1 || n > 4096 || !(s > 0) || s > 3600)
    usage(ops);
  return { op, inflight: n, seconds: s };
}

function nowNs() {
  return Number(process.hrtime.bigint());
}

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.floor((sorted.length - 1) * p)] / 1000 : null;
}

// Keep INFLIGHT operations going: start(slot, done) starts one and calls done(errorText or
// null) when it completed; resolves with the result once every slot has stopped.
function measure(inflight, seconds, start) {
  return new Promise((resolve) => {
    const t = nowNs();
    const warmEnd = t + Math.min(seconds * 0.1e9, 0.3e9);
    const deadline = warmEnd + seconds * 1e9;
    const lat = [];
    let ops = 0, errors = 0, note = '', lastEnd = 0, active = 0;

    const launch = (slot) => {
      const t0 = nowNs();
      let finished = false;
      start(slot, (err) => {
        if (finished) {
          errors++;
          note = note || 'a callback was called twice';
          return;
        }
        finished = true;
        const now = nowNs();
        if (err) {
          errors++;
          note = note || String(err);
        } else if (t0 >= warmEnd) {
          ops++;
          lat.push(now - t0);
          lastEnd = now;
        }
        if (!errors && now < deadline)
          launch(slot); // the peers call back from their message handlers: no recursion
        else if (--active === 0) {
          const secs = lastEnd > warmEnd ? (lastEnd - warmEnd) / 1e9 : 0;
          lat.sort((a, b) => a - b);
          resolve({
            ops, errors, note, seconds: secs,
            ops_per_sec: secs > 0 ? ops / secs : 0,
            p50_us: percentile(lat, 0.5),
            p99_us: percentile(lat, 0.99),
          });
        }
      });
    };
    for (let i = 0; i < inflight; i++) {
      active++;
      launch(i);
    }
  });
}

// In the master: print the worker's result as one JSON line, then stop everything.
function masterCollect(peer, args, timeoutSeconds) {
  const version = require(`${peer}/package.json`).version;
  const timer = setTimeout(() => {
    process.stderr.write(`${peer}: no result within ${timeoutSeconds} s\n`);
    finish(1);
  }, timeoutSeconds * 1000);
  const finish = (code) => {
    clearTimeout(timer);
    for (const id in cluster.workers)
      cluster.workers[id].process.kill('SIGKILL');
    process.exit(code);
  };
  cluster.on('message', (worker, msg) => {
    if (!msg || typeof msg !== 'object' || !msg.benchResult)
      return;
    const out = Object.assign({ peer, version, node: process.version, op: args.op, inflight: args.inflight },
                              msg.benchResult);
    process.stdout.write(JSON.stringify(out) + '\n', () => finish(out.errors || !out.ops ? 1 : 0));
  });
  cluster.on('exit', (worker, code, signal) => {
    process.stderr.write(`${peer}: worker ${worker.id} exited (${signal || code}) before the result\n`);
    finish(1);
  });
}

function report(result) {
  process.send({ benchResult: result });
}

module.exports = { VALUE, PAYLOAD, isPrimary, parseArgs, measure, masterCollect, report, nowNs };
