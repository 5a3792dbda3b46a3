// Preloaded into every Node process the tests start (NODE_OPTIONS=--require=...): a listen()
// that names no host, or a wildcard host, binds 127.0.0.1 instead of every interface, so test
// peers never listen beyond loopback.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
const wildcard = (h) => h === undefined || h === null || h === '' || h === '0.0.0.0' || h === '::';

net.Server.prototype.listen = function patchedListen(...args) {
  const [first, second] = args;
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    // listen({port, host, ...}, cb)
    if (first.path === undefined && first.fd === undefined && first.handle === undefined && wildcard(first.host)) {
      args[0] = { ...first, host: '127.0.0.1' };
    }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, cb])
    if (typeof second !== 'string' || wildcard(second)) {
      const rest = typeof second === 'string' ? args.slice(2) : args.slice(1);
      args = [first, '127.0.0.1', ...rest];
    }
  }
  return listen.apply(this, args);
};
