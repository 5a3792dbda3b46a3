// Preloaded into every Node process the tests start (NODE_OPTIONS=--require=...): a listen()
// that names no host, or a wildcard host, binds 127.0.0.1 instead of every interface, so test
// peers never listen beyond loopback.
//
// `listen(port)` without a host binds synchronously (callers may read `server.address()` on the
// next line, and the conformance runner does); `listen(port, host)` resolves the host first and
// binds later. To keep the synchronous behaviour, a wildcard listen is given a TCP handle that
// is already bound to 127.0.0.1.
'use strict';
const net = require('net');

let TCPWrap = null;
try {
  const { TCP, constants } = process.binding('tcp_wrap');
  TCPWrap = { TCP, SERVER: constants.SERVER };
} catch {
  // Without the internal binding, fall back to passing the host (asynchronous bind).
}

const isWildcard = (h) => h === undefined || h === null || h === '' || h === '0.0.0.0' || h === '::';

function loopbackHandle(port) {
  if (!TCPWrap) return null;
  const handle = new TCPWrap.TCP(TCPWrap.SERVER);
  if (handle.bind('127.0.0.1', Number(port) || 0) !== 0) {
    handle.close();
    return null;
  }
  return handle;
}

const original = net.Server.prototype.listen;
net.Server.prototype.listen = function listenOnLoopback(...args) {
  let port;
  let rest;
  let options = null;
  if (args[0] !== null && typeof args[0] === 'object' && !Array.isArray(args[0])) {
    options = args[0];
    if (options.path !== undefined || options.fd !== undefined || options.handle !== undefined || options._handle !== undefined) {
      return original.apply(this, args);
    }
    if (!isWildcard(options.host)) return original.apply(this, args);
    port = options.port;
    rest = args.slice(1);
  } else if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0])) || args.length === 0 || typeof args[0] === 'function') {
    port = typeof args[0] === 'function' || args.length === 0 ? 0 : args[0];
    const hostGiven = typeof args[1] === 'string';
    if (hostGiven && !isWildcard(args[1])) return original.apply(this, args);
    rest = args.slice(typeof args[0] === 'function' ? 0 : hostGiven ? 2 : 1);
  } else {
    return original.apply(this, args); // a pipe path or something else
  }
  const callback = rest.find((a) => typeof a === 'function');
  const handle = loopbackHandle(port);
  if (handle) return original.call(this, handle, callback);
  return original.call(this, { ...(options || {}), port: Number(port) || 0, host: '127.0.0.1' }, callback);
};
