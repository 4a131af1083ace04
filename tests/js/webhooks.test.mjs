// Webhooks as a Laravel/Node backend receives them: every POST is verified with the
// official server library (`pusher.webhook(req).isValid()`, which also insists on
// Content-Type "application/json"), events are driven by real pusher-js / Echo clients.
import http from 'node:http';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  APPS,
  connected,
  deferred,
  echoClient,
  pusherClient,
  serverLib,
  sleep,
  startAuthServer,
  subscribed,
  uniq,
  waitUntil,
} from './helpers.mjs';

const HOOKS_APP = APPS.hooks;
const PORT = Number(process.env.UVGATE_JS_WEBHOOK_PORT);
const lib = serverLib(HOOKS_APP);
const auth = await startAuthServer(HOOKS_APP);

/** Every delivery: {valid, events, rawBody, headers, path, time, ok}. */
const deliveries = [];
const failFor = new Set(); // channel names whose first delivery gets a 500
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const hook = lib.webhook({ headers: req.headers, rawBody });
    const valid = hook.isValid();
    const events = valid ? hook.getEvents() : [];
    const failing = events.find((e) => failFor.has(e.channel));
    deliveries.push({ valid, events, rawBody, headers: req.headers, path: req.url, time: Date.now(), ok: !failing });
    if (failing) {
      failFor.delete(failing.channel);
      res.writeHead(500);
      return res.end('try again');
    }
    res.writeHead(200);
    res.end('{}');
  });
});
const listening = PORT
  ? await new Promise((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(PORT, '127.0.0.1', () => resolve(true));
    })
  : false;
after(() => new Promise((resolve) => server.close(resolve)));

const skip = !HOOKS_APP || !listening ? 'no webhook app / port configured (UVGATE_JS_WEBHOOK_PORT)' : false;

/** Events for `channel` in deliveries answered 2xx (a batch answered 500 comes again). */
function eventsFor(channel, { all = false } = {}) {
  return deliveries.filter((d) => all || d.ok).flatMap((d) => d.events.filter((e) => e.channel === channel));
}

function waitEvent(channel, name, pred = () => true, ms = 8000) {
  return waitUntil(
    () => eventsFor(channel).find((e) => e.name === name && pred(e)),
    `webhook ${name} for ${channel} (got ${JSON.stringify(eventsFor(channel))})`,
    ms,
  );
}

// The cases use separate apps' sockets and unique names: run them side by side.
describe('webhooks', { concurrency: true }, () => {
  test('every delivery is signed so the server library accepts it', { skip }, async () => {
    const name = uniq('signed-');
    const client = pusherClient({ app: HOOKS_APP });
    const ch = client.subscribe(name);
    await subscribed(ch);
    await waitEvent(name, 'channel_occupied');
    const d = deliveries.find((x) => x.events.some((e) => e.channel === name));
    assert.equal(d.valid, true, `invalid webhook: ${JSON.stringify(d.headers)} ${d.rawBody}`);
    assert.equal(d.headers['x-pusher-key'], HOOKS_APP.key);
    assert.equal(d.path, '/pusher/webhook');
    assert.ok(Math.abs(JSON.parse(d.rawBody).time_ms - Date.now()) < 60000, 'time_ms is not now');
    assert.ok(deliveries.every((x) => x.valid), 'some delivery failed signature validation');
  });

  test('channel_occupied then channel_vacated (after the ~3 s delay)', { skip }, async () => {
    const name = uniq('occ-');
    const client = pusherClient({ app: HOOKS_APP });
    const ch = client.subscribe(name);
    await subscribed(ch);
    await waitEvent(name, 'channel_occupied');
    client.unsubscribe(name);
    await waitEvent(name, 'channel_vacated');
    assert.deepEqual(
      eventsFor(name).map((e) => e.name),
      ['channel_occupied', 'channel_vacated'],
    );
  });

  test('a quick rejoin cancels channel_vacated', { skip }, async () => {
    const name = uniq('rejoin-');
    const client = pusherClient({ app: HOOKS_APP });
    await subscribed(client.subscribe(name));
    await waitEvent(name, 'channel_occupied');
    client.unsubscribe(name);
    await sleep(300);
    await subscribed(client.subscribe(name));
    await sleep(4500);
    assert.deepEqual(eventsFor(name).map((e) => e.name), ['channel_occupied']);
  });

  test('presence: member_added and member_removed with the user id', { skip }, async () => {
    const room = uniq('hook-room-');
    const channel = `presence-${room}`;
    const a = echoClient({ app: HOOKS_APP, auth, user: 'hook-a' });
    const here = deferred('here');
    a.join(room).here(here.resolve);
    await here;
    await waitEvent(channel, 'member_added', (e) => e.user_id === 'hook-a');
    a.leave(room);
    await waitEvent(channel, 'member_removed', (e) => e.user_id === 'hook-a');
    await waitEvent(channel, 'channel_vacated');
  });

  test('client_event: event, data, socket_id and (presence) user_id', { skip }, async () => {
    const room = uniq('hook-typing-');
    const channel = `presence-${room}`;
    const a = echoClient({ app: HOOKS_APP, auth, user: 'typist' });
    const b = echoClient({ app: HOOKS_APP, auth, user: 'reader' });
    const ha = deferred('here a');
    const hb = deferred('here b');
    a.join(room).here(ha.resolve);
    b.join(room).here(hb.resolve);
    await Promise.all([ha, hb]);
    a.join(room).whisper('typing', { typing: true });
    const e = await waitEvent(channel, 'client_event');
    assert.equal(e.event, 'client-typing');
    assert.deepEqual(JSON.parse(e.data), { typing: true });
    assert.equal(e.socket_id, a.socketId());
    assert.equal(e.user_id, 'typist');
  });

  test('cache_miss when subscribing to an empty cache channel', { skip }, async () => {
    const name = uniq('cache-hook-');
    const client = pusherClient({ app: HOOKS_APP });
    await connected(client);
    client.subscribe(name);
    await waitEvent(name, 'cache_miss');
  });

  test('a delivery answered 500 is retried, signed again', { skip }, async () => {
    const name = uniq('retry-');
    failFor.add(name);
    const client = pusherClient({ app: HOOKS_APP });
    await subscribed(client.subscribe(name));
    await waitUntil(
      () => eventsFor(name, { all: true }).filter((e) => e.name === 'channel_occupied').length >= 2,
      `a retried channel_occupied for ${name} (got ${JSON.stringify(eventsFor(name, { all: true }))})`,
      8000,
    );
    const tries = deliveries.filter((d) => d.events.some((e) => e.channel === name));
    assert.ok(tries.every((d) => d.valid));
    assert.ok(tries[1].time - tries[0].time >= 500, 'retried with no backoff');
  });
});
