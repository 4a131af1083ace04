// Peer: the same job as uvgate on Node.js + ws (the JS reference point).
//   node bench/peers/node_ws/server.js --host 127.0.0.1 --port 8765 --secret S --app echo
'use strict';
const crypto = require('crypto');
const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const o = { host: '127.0.0.1', port: 8765, secret: 'bench-secret', app: 'echo' };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in o)) throw new Error(`unknown option ${argv[i]}`);
    o[k] = k === 'port' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return o;
}

const args = parseArgs(process.argv);
const key = Buffer.from(args.secret);
const chat = args.app === 'chat';
const groups = new Map();
let nextId = 1;

// Same rules as gateway/tokens.py verify_token: v1.<claims b64url>.<hmac b64url>.
function verifyToken(token) {
  if (typeof token !== 'string' || !token.startsWith('v1.')) throw new Error('malformed token');
  const dot = token.lastIndexOf('.');
  const body = token.slice(0, dot);
  const sig = token.slice(dot + 1);
  if (dot < 0 || body.length <= 3) throw new Error('malformed token');
  const expected = crypto.createHmac('sha256', key).update(body).digest('base64url');
  const a = Buffer.from(expected);
  const b = Buffer.from(sig);
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) throw new Error('bad signature');
  const claims = JSON.parse(Buffer.from(body.slice(3), 'base64url').toString());
  if (typeof claims !== 'object' || claims === null) throw new Error('malformed token');
  if (typeof claims.sub !== 'string' || !claims.sub || !Number.isInteger(claims.exp)) {
    throw new Error('malformed claims');
  }
  if (claims.exp <= Date.now() / 1000) throw new Error('token expired');
  return claims.sub;
}

const wss = new WebSocketServer({
  host: args.host, port: args.port, path: '/ws', perMessageDeflate: false, backlog: 4096,
  clientTracking: false,
});

wss.on('connection', (ws) => {
  let user = null;
  const joined = [];
  ws.on('message', (data, isBinary) => {
    if (user === null) {
      try {
        const m = JSON.parse(data.toString());
        if (m.type !== 'auth') throw new Error('expected auth');
        user = verifyToken(m.token);
      } catch (e) {
        ws.send(JSON.stringify({ type: 'error', code: 4401, reason: e.message }));
        ws.close(4401, 'unauthorized');
        return;
      }
      ws.send(JSON.stringify({ type: 'auth_ok', id: `c${nextId++}`, user }));
      return;
    }
    if (!chat) {
      ws.send(data, { binary: isBinary });
      return;
    }
    let m;
    try { m = JSON.parse(data.toString()); } catch (e) { return; }
    if (m.type === 'join') {
      let set = groups.get(m.group);
      if (!set) { set = new Set(); groups.set(m.group, set); }
      set.add(ws);
      joined.push(m.group);
      ws.send(JSON.stringify({ type: 'joined', group: m.group }));
    } else if (m.type === 'publish') {
      const set = groups.get(m.group);
      if (set) {
        const out = JSON.stringify({ type: 'message', group: m.group, from: user, data: m.data });
        for (const member of set) member.send(out);
      }
    }
  });
  ws.on('close', () => {
    for (const g of joined) {
      const set = groups.get(g);
      if (set) { set.delete(ws); if (set.size === 0) groups.delete(g); }
    }
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  console.log(`node_ws listening on ${args.host}:${args.port} app=${args.app}`);
});
process.on('SIGTERM', () => process.exit(0));
