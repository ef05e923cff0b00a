// The page of `sdnet up --web`: state over server-sent events, commands over POST /api/cmd.
// Plain browser JavaScript, no build step. Everything a peer controls (names, messages) is
// inserted as text, never as HTML.
'use strict';

const token = new URLSearchParams(location.search).get('token') ?? '';
const $ = (id) => document.getElementById(id);
const devices = new Map();
const transfers = new Map();

async function cmd(name, args = {}) {
  const res = await fetch('/api/cmd', { method: 'POST', headers: { 'content-type': 'application/json', 'x-sdnet-token': token }, body: JSON.stringify({ cmd: name, args }) });
  const body = await res.json();
  if (!body.ok) throw new Error(body.error?.message ?? 'failed');
  return body.result;
}

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function log(text) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  $('log').prepend(li);
  while ($('log').children.length > 100) $('log').lastChild.remove();
}

function renderDevices() {
  const body = $('devices').tBodies[0];
  body.replaceChildren();
  const paired = [];
  for (const d of devices.values()) {
    const tr = document.createElement('tr');
    tr.dataset.id = d.id;
    cell(tr, d.name ?? '?');
    cell(tr, d.id.slice(0, 10)).className = 'mono';
    cell(tr, d.state, `state-${d.state}`);
    cell(tr, d.path ?? '-');
    cell(tr, d.rttMs != null ? `${d.rttMs.toFixed(1)} ms` : '-');
    body.appendChild(tr);
    if (d.state === 'paired' || d.state === 'connected' || d.state === 'disconnected') paired.push(d);
  }
  $('no-devices').hidden = devices.size > 0;
  for (const sel of [$('msg-to'), $('send-to')]) {
    const keep = sel.value;
    sel.replaceChildren(...paired.map((d) => Object.assign(document.createElement('option'), { value: d.id, textContent: d.name ?? d.id.slice(0, 10) })));
    if (paired.some((d) => d.id === keep)) sel.value = keep;
  }
}

function renderTransfers() {
  const body = $('transfers').tBodies[0];
  body.replaceChildren();
  for (const t of transfers.values()) {
    const tr = document.createElement('tr');
    cell(tr, t.direction === 'send' ? 'out' : 'in');
    cell(tr, t.peer?.name ?? t.peer?.endpointId?.slice(0, 10) ?? '?');
    cell(tr, t.stage);
    const td = cell(tr, '');
    if (t.bytesTotal) {
      const bar = document.createElement('span');
      bar.className = 'bar';
      const fill = document.createElement('span');
      fill.style.width = `${Math.min(100, (100 * (t.bytesDone ?? 0)) / t.bytesTotal).toFixed(1)}%`;
      bar.appendChild(fill);
      td.append(bar, ` ${((t.bytesDone ?? 0) / 1048576).toFixed(1)} / ${(t.bytesTotal / 1048576).toFixed(1)} MiB`);
    }
    body.appendChild(tr);
  }
  $('no-transfers').hidden = transfers.size > 0;
}

function applyState(state) {
  $('self-name').textContent = state.self.name;
  $('self-id').textContent = state.self.id.slice(0, 10);
  $('self-relay').textContent = state.self.relay ? `relay ${state.self.relay}` : 'no relay';
  devices.clear();
  for (const d of state.devices) devices.set(d.id, d);
  // File transfer (sdnet/xfer/1) shows its panel once the service offers it.
  $('send-panel').hidden = !state.commands.includes('transfer-send');
  renderDevices();
}

async function refreshDevices() {
  for (const d of await cmd('devices')) devices.set(d.id, d);
  renderDevices();
}

function onEvent(e) {
  switch (e.event) {
    case 'hello':
      applyState(e.state);
      break;
    case 'device':
      log(`${e.name ?? e.id.slice(0, 10)} ${e.state}${e.path ? ` (${e.path})` : ''}`);
      if (e.state === 'removed') devices.delete(e.id);
      void refreshDevices();
      break;
    case 'message':
      log(`message from ${e.name ?? e.from.slice(0, 10)}: ${typeof e.payload === 'string' ? e.payload : JSON.stringify(e.payload)}`);
      break;
    case 'pairing':
      log(`pairing ${e.stage}${e.peer?.name ? ` ${e.peer.name}` : ''}${e.error ? `: ${e.error.message}` : ''}`);
      break;
    case 'transfer': {
      // Hashing comes before the transfer has an id ('-'): one row per peer until it does.
      const pending = `hashing:${e.direction}:${e.peer?.endpointId}`;
      const known = e.transferId && e.transferId !== '-';
      if (known) transfers.delete(pending);
      transfers.set(known ? e.transferId : pending, e);
      renderTransfers();
      break;
    }
    case 'relay':
      log(`relay ${e.state} ${e.relay ?? ''}`);
      break;
    default:
      break;
  }
}

function connect() {
  const source = new EventSource(`/api/events?token=${encodeURIComponent(token)}`);
  source.onopen = () => {
    $('live').textContent = 'live';
    $('live').className = 'badge on';
  };
  source.onerror = () => {
    $('live').textContent = 'reconnecting';
    $('live').className = 'badge off';
  };
  source.onmessage = (m) => onEvent(JSON.parse(m.data));
}

$('invite').addEventListener('click', async () => {
  $('invite').disabled = true;
  $('invite-status').textContent = '';
  try {
    const inv = await cmd('pair-invite');
    $('code').textContent = inv.code;
    // The SVG comes from our own server (drawn from the pairing payload), not from a peer.
    $('qr').innerHTML = inv.qrSvg ?? '';
    $('invite-status').textContent = `Type these words on the other device; valid until ${new Date(inv.expiresAt).toLocaleTimeString()}.`;
    const done = await cmd('pair-wait', { sessionId: inv.sessionId });
    $('invite-status').textContent = `Paired with ${done.paired.name ?? done.paired.id.slice(0, 10)}.`;
    $('code').textContent = '';
    $('qr').replaceChildren();
  } catch (err) {
    $('invite-status').textContent = err.message;
  } finally {
    $('invite').disabled = false;
    void refreshDevices();
  }
});

$('join').addEventListener('click', async () => {
  $('join').disabled = true;
  $('join-status').textContent = 'joining…';
  try {
    const r = await cmd('pair-join', { input: $('join-code').value.trim() });
    $('join-status').textContent = `Paired with ${r.paired.name ?? r.paired.id.slice(0, 10)}.`;
    $('join-code').value = '';
  } catch (err) {
    $('join-status').textContent = err.message;
  } finally {
    $('join').disabled = false;
    void refreshDevices();
  }
});

$('msg-send').addEventListener('click', async () => {
  $('msg-status').textContent = 'sending…';
  try {
    const r = await cmd('msg', { device: $('msg-to').value, text: $('msg-text').value });
    $('msg-status').textContent = `delivered in ${r.rttMs.toFixed(1)} ms`;
    log(`you to ${r.name ?? '?'}: ${$('msg-text').value}`);
    $('msg-text').value = '';
  } catch (err) {
    $('msg-status').textContent = err.message;
  }
});

$('send').addEventListener('click', async () => {
  $('send-status').textContent = 'sending…';
  try {
    const r = await cmd('transfer-send', { device: $('send-to').value, paths: [$('send-path').value.trim()] });
    $('send-status').textContent = `started (${r.job}); progress below`;
  } catch (err) {
    $('send-status').textContent = err.message;
  }
});

connect();
setInterval(() => void refreshDevices().catch(() => undefined), 5000);
