// SPDX-License-Identifier: MIT
//
// cluster-hub 0.1.2 (sirian/node-cluster-hub), used as its README and examples/ show: the master
// answers requests and arbitrates locks, a worker requests and locks.
//
//   request N S   a worker calls hub.requestMaster('echo', payload, cb); the master's handler
//                 answers callback(null, data) (hub row: Request 1 worker)
//   lock N S      a worker calls hub.lock('bench.lock.<slot>', unlock => unlock(cb)): a lock and
//                 an acknowledged unlock, two round trips (hub row: Lock+Unlock)
'use strict';

const cluster = require('cluster');
const Hub = require('cluster-hub');
const { PAYLOAD, isPrimary, parseArgs, measure, masterCollect, report } = require('./common');

const args = parseArgs(['request', 'lock']);
const hub = new Hub();

if (isPrimary) {
  hub.on('echo', (data, sender, callback) => callback(null, data));
  masterCollect('cluster-hub', args, args.seconds + 60);
  cluster.fork({ BENCH_ROLE: 'client' });
} else {
  // the master's Hub exists before the fork, so the first request is not lost
  measure(args.inflight, args.seconds, args.op === 'request' ? request : lock).then(report);
}

function request(slot, done) {
  hub.requestMaster('echo', PAYLOAD, (err, data) =>
    done(err ? String(err) : data === PAYLOAD ? null : `requestMaster: wrong reply ${data}`));
}

function lock(slot, done) {
  hub.lock(`bench.lock.${slot}`, (unlock) => unlock(() => done(null)));
}
