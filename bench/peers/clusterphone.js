// SPDX-License-Identifier: MIT
//
// clusterphone 1.0.1 (samcday/clusterphone), used as its README shows: a worker sends a command
// to the master and waits for the acknowledgement, which carries the handler's reply.
//
//   send N S   a worker calls clusterphone.sendToMaster('echo', payload).acknowledged(cb); the
//              master's handler answers ack(payload) (hub row: Request 1 worker)
'use strict';

const cluster = require('cluster');
const clusterphone = require('clusterphone');
const { PAYLOAD, isPrimary, parseArgs, measure, masterCollect, report } = require('./common');

const args = parseArgs(['send']);

if (isPrimary) {
  clusterphone.handlers.echo = (worker, payload, fd, ack) => ack(payload);
  masterCollect('clusterphone', args, args.seconds + 60);
  cluster.fork({ BENCH_ROLE: 'client' });
} else {
  measure(args.inflight, args.seconds, send).then(report);
}

function send(slot, done) {
  clusterphone.sendToMaster('echo', PAYLOAD).acknowledged((err, reply) =>
    done(err ? String(err) : reply === PAYLOAD ? null : `acknowledged: wrong reply ${reply}`));
}
