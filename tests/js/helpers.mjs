// Shared pieces of the end-to-end tests: the gateway's address and apps (from the
// environment set by tests/gateway/pusher/test_pusher_js.py), pusher-js / laravel-echo clients pointed at
// it, a real Laravel-style auth endpoint, and bounded waits that fail with a clear message.
//
// Run alone (gateway already running):
//   UVGATE_JS_WS_PORT=6001 UVGATE_JS_APPS='[{"id":..,"key":..,"secret":..}]' node --test tests/js/
import { spawn } from 'node:child_process';
import http from 'node:http';
import crypto from 'node:crypto';
import { after } from 'node:test';
import Pusher from 'pusher-js';
import PusherServer from 'pusher';
import Echo from 'laravel-echo';

export { Pusher, PusherServer, Echo };

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set (see tests/gateway/pusher/test_pusher_js.py)`);
  return value;
}

export const HOST = process.env.UVGATE_JS_WS_HOST || '127.0.0.1';
export const PORT = Number(need('UVGATE_JS_WS_PORT'));
export const API_PORT = Number(process.env.UVGATE_JS_API_PORT || PORT);
/** Apps by role: `close` (auth_failure="close", client events on), `error` (auth_failure="error"). */
export const APPS = JSON.parse(need('UVGATE_JS_APPS'));
export const CLOSE_APP = APPS.close;
export const ERROR_APP = APPS.error;
/** The encryption master key the "backend" (auth endpoint + server lib) uses. */
export const MASTER_KEY_B64 = crypto.createHash('sha256').update('uvgate-js-tests').digest('base64');
export const WAIT_MS = Number(process.env.UVGATE_JS_WAIT_MS || 5000);

/** A unique suffix so tests in parallel processes never share a channel or user. */
export function uniq(prefix = '') {
  return `${prefix}${process.pid}x${crypto.randomBytes(4).toString('hex')}`;
}

// ------------------------------------------------------------------ bounded waiting

/** Resolve when `check()` is truthy; reject after `ms` with `what` in the message. */
export async function waitUntil(check, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve exposed, that rejects after `ms` naming `what`. */
export function deferred(what, ms = WAIT_MS) {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  promise.then(
    () => clearTimeout(timer),
    () => clearTimeout(timer),
  );
  promise.resolve = resolve;
  promise.reject = reject;
  promise.catch(() => {}); // a deferred nobody awaits must not crash the process
  return promise;
}

/** Resolve with the data the first time `bindable.bind(event)` fires (`meta` too if asked). */
export function once(bindable, event, what = event, ms = WAIT_MS, { meta = false } = {}) {
  const d = deferred(what, ms);
  const cb = (data, metadata) => {
    bindable.unbind(event, cb);
    d.resolve(meta ? { data, meta: metadata } : data);
  };
  bindable.bind(event, cb);
  return d;
}

// ------------------------------------------------------------------ the "Laravel" backend

/** The official Node server library, as a Laravel app (pusher-php-server) would use it. */
export function serverLib(app = CLOSE_APP, extra = {}) {
  return new PusherServer({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: HOST,
    port: String(API_PORT),
    useTLS: false,
    encryptionMasterKeyBase64: MASTER_KEY_B64,
    timeout: WAIT_MS,
    ...extra,
  });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function hmac(secret, text) {
  return crypto.createHmac('sha256', secret).update(text).digest('hex');
}

/**
 * Start the app's broadcasting endpoints, signing as Laravel's do (through pusher's
 * server library, which is what Laravel's PusherBroadcaster calls):
 *
 *  POST /broadcasting/auth       socket_id, channel_name -> {auth[, channel_data][, shared_secret]}
 *  POST /broadcasting/user-auth  socket_id               -> {auth, user_data}
 *
 * The user is the bearer token (`Authorization: Bearer <URI-encoded user id>`, Echo's
 * `bearerToken` option); none -> 403, as Laravel refuses a guest. Channel rules:
 *  - a name containing "forbidden" -> 403 (the app's Broadcast::channel callback said no);
 *  - a name containing "forged"    -> 200 with a signature made with the wrong secret
 *    (a misconfigured backend: only the gateway can catch it);
 *  - presence channels and signin: user_info {name: "User <id>"}; an all-digit user id is
 *    sent as a JSON number in channel_data, as Laravel does with integer primary keys;
 *    user "listinfo-*" gets user_info [] (PHP's empty array), "noinfo-*" no user_info;
 *  - signin: `X-Watchlist: id1,id2` adds a watchlist to user_data.
 * Returns {url, requests, close()}; `requests` logs every call. Call it at the top level
 * of a test file (or in a test): it closes itself in an after() hook of where it is called.
 */
export async function startAuthServer(app = CLOSE_APP) {
  const lib = serverLib(app);
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const body = new URLSearchParams(await readBody(req));
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization || '');
    const user = bearer ? decodeURIComponent(bearer[1]) : null;
    const socketId = body.get('socket_id');
    const channel = body.get('channel_name');
    requests.push({ path: req.url, user, socketId, channel });
    const reply = (status, obj) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    try {
      if (!user) return reply(403, { message: 'Unauthenticated.' });
      if (req.url === '/broadcasting/user-auth') {
        const userData = { id: user, user_info: { name: `User ${user}` } };
        const watchlist = req.headers['x-watchlist'];
        if (watchlist) userData.watchlist = watchlist.split(',');
        return reply(200, lib.authenticateUser(socketId, userData));
      }
      if (req.url !== '/broadcasting/auth') return reply(404, { message: 'Not Found' });
      if (channel.includes('forbidden')) return reply(403, { message: 'This action is unauthorized.' });
      // Laravel passes $user->getAuthIdentifier(): an integer for the usual id column.
      const userId = /^\d+$/.test(user) ? Number(user) : user;
      let presence;
      if (channel.startsWith('presence-')) {
        presence = { user_id: userId, user_info: { name: `User ${user}` } };
        // What PHP sends for an empty array, and for no info at all.
        if (user.startsWith('listinfo-')) presence.user_info = [];
        if (user.startsWith('noinfo-')) delete presence.user_info;
      }
      const signed = lib.authorizeChannel(socketId, channel, presence);
      if (channel.includes('forged')) {
        const text = presence ? `${socketId}:${channel}:${signed.channel_data}` : `${socketId}:${channel}`;
        signed.auth = `${app.key}:${hmac('not-the-secret', text)}`;
      }
      return reply(200, signed);
    } catch (err) {
      return reply(500, { message: String(err) });
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  const handle = {
    url,
    requests,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
  after(() => handle.close());
  return handle;
}

// ------------------------------------------------------------------ clients

const clients = [];
after(() => {
  for (const c of clients) {
    try {
      c.disconnect();
    } catch {
      // already gone
    }
  }
});

/**
 * A pusher-js client configured the way a Laravel app configures it for Reverb/soketi.
 * `user` becomes the bearer token the auth endpoint reads. Records every connection error
 * code and state change on `client.log`.
 */
export function pusherClient({ app = CLOSE_APP, auth, user, key, watchlist, PusherClass = Pusher, ...extra } = {}) {
  const headers = user ? { Authorization: `Bearer ${encodeURIComponent(user)}` } : {};
  const userHeaders = watchlist ? { ...headers, 'X-Watchlist': watchlist.join(',') } : headers;
  const client = new PusherClass(key ?? app.key, {
    cluster: 'mt1',
    wsHost: HOST,
    wsPort: PORT,
    wssPort: PORT,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: auth ? { endpoint: `${auth.url}/broadcasting/auth`, transport: 'ajax', headers } : undefined,
    userAuthentication: auth
      ? { endpoint: `${auth.url}/broadcasting/user-auth`, transport: 'ajax', headers: userHeaders }
      : undefined,
    ...extra,
  });
  track(client);
  return client;
}

function track(client) {
  clients.push(client);
  const log = { states: [], errors: [], codes: [] };
  client.log = log;
  client.connection.bind('state_change', (s) => log.states.push(s.current));
  client.connection.bind('error', (err) => {
    log.errors.push(err);
    const code = err?.data?.code ?? err?.error?.data?.code;
    if (code !== undefined) log.codes.push(code);
  });
  return client;
}

/**
 * laravel-echo as resources/js/bootstrap.js sets it up for Reverb (`broadcaster: 'reverb'`),
 * with the real pusher-js passed as the `Pusher` option (no `window` in Node).
 */
export function echoClient({ app = CLOSE_APP, auth, user, EchoClass = Echo, PusherClass = Pusher, ...extra } = {}) {
  const echo = new EchoClass({
    broadcaster: 'reverb',
    Pusher: PusherClass,
    key: app.key,
    wsHost: HOST,
    wsPort: PORT,
    wssPort: PORT,
    forceTLS: false,
    enabledTransports: ['ws', 'wss'],
    disableStats: true,
    authEndpoint: auth ? `${auth.url}/broadcasting/auth` : undefined,
    // Fresh objects: Echo 2 spreads its static defaults shallowly, so without these the
    // bearer token would be written into headers shared by every Echo instance.
    auth: { headers: {} },
    userAuthentication: auth ? { endpoint: `${auth.url}/broadcasting/user-auth`, headers: {} } : undefined,
    bearerToken: user ? encodeURIComponent(user) : null,
    ...extra,
  });
  track(echo.connector.pusher);
  return echo;
}

/**
 * Send pusher:ping and wait for the pusher:pong: the gateway handles a socket's messages in
 * order, so everything the client sent before (an unsubscribe...) has then been processed.
 */
export async function roundTrip(client, what = 'pusher:pong') {
  const pusher = client.connector ? client.connector.pusher : client;
  const pong = deferred(what);
  const cb = (m) => {
    if (m.event === 'pusher:pong') pong.resolve();
  };
  pusher.connection.bind('message', cb);
  pusher.send_event('pusher:ping', {});
  try {
    await pong;
  } finally {
    pusher.connection.unbind('message', cb);
  }
}

/** Wait for a client (pusher-js or Echo) to reach the "connected" state. */
export async function connected(client) {
  const pusher = client.connector ? client.connector.pusher : client;
  if (pusher.connection.state !== 'connected') {
    await waitUntil(
      () => pusher.connection.state === 'connected',
      `connection to reach "connected" (state ${pusher.connection.state}, errors ${JSON.stringify(pusher.log?.errors ?? [])})`,
    );
  }
  return pusher;
}

/** Wait until the channel is subscribed (pusher-js Channel or an Echo channel). */
export async function subscribed(channel, what = 'subscription') {
  const sub = channel.subscription ?? channel;
  await waitUntil(() => sub.subscribed, `${what} to ${sub.name} to succeed`);
  return sub;
}

// ------------------------------------------------------------------ a gateway of our own

/**
 * A gateway process this test file starts and stops itself (`python -m gateway serve
 * --config <toml>`), for restarts and multi-worker setups. Needs UVGATE_JS_PYTHON and
 * UVGATE_JS_ROOT (set by tests/gateway/pusher/test_pusher_js.py).
 */
export class GatewayProcess {
  static get available() {
    return Boolean(process.env.UVGATE_JS_PYTHON && process.env.UVGATE_JS_ROOT);
  }

  constructor(config, port) {
    this.config = config;
    this.port = port;
    this.proc = null;
    this.output = '';
  }

  async start() {
    // Without UVGATE_* variables: the gateway reads its options from them.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('UVGATE_')));
    this.output = '';
    const child = spawn(process.env.UVGATE_JS_PYTHON, ['-m', 'gateway', 'serve', '--config', this.config], {
      cwd: process.env.UVGATE_JS_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = child;
    child.stdout.on('data', (d) => (this.output += d));
    child.stderr.on('data', (d) => (this.output += d));
    await waitUntil(
      () => this.output.includes(`:${this.port}/`) || child.exitCode !== null,
      `gateway start on port ${this.port} (${this.output})`,
      15000,
    );
    if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}: ${this.output}`);
  }

  /** SIGTERM, then SIGKILL after 8 s. */
  async stop() {
    const child = this.proc;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(8000)]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}
