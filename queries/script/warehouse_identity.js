// The identity stage's arithmetic for the warehouses whose SQL has neither wrap-around 64-bit
// integers nor a fold over arrays (Snowflake, BigQuery): JavaScript user-defined functions
// include this text and end with one `return` line. ES5 only (no BigInt): 64-bit values are
// four 16-bit limbs, least significant first, and cross into SQL as decimal text.
// Bit for bit the same as Cohort's node_code and new_profile_id, and the same sequential rule
// as its replay (see src/script/dialect/warehouse.rs).

function cohortLimbs(hex) {
  return [3, 2, 1, 0].map(function (i) { return parseInt(hex.substr(i * 4, 4), 16); });
}

function cohortMul(a, b) {
  var r = [0, 0, 0, 0];
  for (var i = 0; i < 4; i++) {
    var carry = 0;
    for (var j = 0; i + j < 4; j++) {
      var t = r[i + j] + a[i] * b[j] + carry;
      r[i + j] = t % 65536;
      carry = Math.floor(t / 65536);
    }
  }
  return r;
}

// h ^ (h >>> 33)
function cohortXorShift33(h) {
  var s = [h[2], h[3], 0, 0];
  var out = [];
  for (var i = 0; i < 4; i++) {
    var next = i < 3 ? s[i + 1] : 0;
    out.push(h[i] ^ ((s[i] >> 1) | ((next & 1) << 15)));
  }
  return out;
}

// The two's complement of h (its negation modulo 2^64).
function cohortNeg(h) {
  var x = h.map(function (l) { return 65535 - l; });
  for (var i = 0; i < 4; i++) {
    x[i] += 1;
    if (x[i] < 65536) break;
    x[i] = 0;
  }
  return x;
}

// h as signed 64-bit decimal text.
function cohortDecimal(h) {
  var neg = h[3] >= 32768;
  var x = neg ? cohortNeg(h) : h.slice();
  var digits = '';
  while (x[0] || x[1] || x[2] || x[3]) {
    var r = 0;
    for (var i = 3; i >= 0; i--) {
      var cur = r * 65536 + x[i];
      x[i] = Math.floor(cur / 10);
      r = cur % 10;
    }
    digits = r + digits;
  }
  return (neg ? '-' : '') + (digits || '0');
}

// Signed 64-bit decimal text as limbs.
function cohortParse(text) {
  var neg = text.charAt(0) === '-';
  var x = [0, 0, 0, 0];
  for (var i = neg ? 1 : 0; i < text.length; i++) {
    x = cohortMul(x, [10, 0, 0, 0]);
    var carry = text.charCodeAt(i) - 48;
    for (var j = 0; j < 4 && carry; j++) {
      var t = x[j] + carry;
      x[j] = t % 65536;
      carry = Math.floor(t / 65536);
    }
  }
  return neg ? cohortNeg(x) : x;
}

// The node code of an identifier: FNV-1a over the UTF-8 bytes of `type NUL value`, then the
// 64-bit finalizer; signed decimal text.
function cohortNode(idType, idValue) {
  if (idType === null || idType === undefined || idValue === null || idValue === undefined) {
    return null;
  }
  var bytes = unescape(encodeURIComponent(idType + '\u0000' + idValue));
  var h = cohortLimbs('cbf29ce484222325');
  var prime = cohortLimbs('00000100000001b3');
  for (var i = 0; i < bytes.length; i++) {
    h[0] ^= bytes.charCodeAt(i);
    h = cohortMul(h, prime);
  }
  h = cohortMul(cohortXorShift33(h), cohortLimbs('ff51afd7ed558ccd'));
  h = cohortMul(cohortXorShift33(h), cohortLimbs('c4ceb9fe1a85ec53'));
  return cohortDecimal(cohortXorShift33(h));
}

// A new profile's id: `use_` and the 16 hex digits of the node (signed decimal text).
function cohortProfile(node) {
  if (node === null || node === undefined) return null;
  var h = cohortParse(String(node));
  var hex = '';
  for (var i = 3; i >= 0; i--) hex += ('000' + h[i].toString(16)).slice(-4);
  return 'use_' + hex;
}

// Signed decimal texts compared as numbers.
function cohortCmp(a, b) {
  var na = a.charAt(0) === '-', nb = b.charAt(0) === '-';
  if (na !== nb) return na ? -1 : 1;
  var c = a.length !== b.length ? (a.length < b.length ? -1 : 1) : (a < b ? -1 : a > b ? 1 : 0);
  return na ? -c : c;
}

// Segment's sequential rule over one component's events, in order. `events`: [{seq, m
// (message id), us (time in microseconds), ids: [{n (node text), t (rank)}] sorted by rank,
// then value}]; `limits`: each rank's limit; `windows`: each rank's window in microseconds, 0
// for a limit over all time (a per-period limit counts the values added less than the window
// before the event). An event's identifiers first learn their current profile; the event
// keeps the longest prefix that breaks no limit (at least one), merges it into the oldest
// profile it matches (or starts one named after its first identifier), and records each
// later identifier as dropped with the first rank whose limit its prefix broke. Returns
// {owner: [{n, t, p}], dropped: [{seq, m, n, broken}]} (p = the node that started the
// profile).
function cohortReplay(events, limits, windows) {
  var owner = {}, order = [], profs = {}, dropped = [];
  var ranks = limits.length;
  var win = windows.map(Number);
  // The values of rank `ty` profile `q` has that count at time `us`.
  function counted(q, ty, us) {
    if (!win[ty]) return q.c[ty];
    return q.a.filter(function (x) { return x.t === ty && x.us > us - win[ty]; }).length;
  }
  function broken(prefix, us) {
    var seen = {}, counts = [];
    for (var ty = 0; ty < ranks; ty++) counts.push(0);
    prefix.forEach(function (x) {
      if (x.p === null) counts[x.t] += 1;
      else if (!seen[x.p]) {
        seen[x.p] = true;
        for (var t = 0; t < ranks; t++) counts[t] += counted(profs[x.p], t, us);
      }
    });
    for (var t = 0; t < ranks; t++) if (counts[t] > Number(limits[t])) return t;
    return null;
  }
  events.forEach(function (ev) {
    var us = Number(ev.us);
    var io = ev.ids.map(function (x) {
      var n = String(x.n);
      return { n: n, t: Number(x.t), p: owner[n] ? owner[n].p : null };
    });
    var k = 1;
    for (var kk = io.length; kk >= 1; kk--) {
      if (broken(io.slice(0, kk), us) === null) { k = kk; break; }
    }
    // Dropped against the profiles as they were before this event.
    for (var j = k + 1; j <= io.length; j++) {
      dropped.push({ seq: ev.seq, m: ev.m, n: io[j - 1].n, broken: broken(io.slice(0, j), us) });
    }
    var pre = io.slice(0, k);
    var matched = {}, target = null;
    pre.forEach(function (x) {
      if (x.p === null || matched[x.p]) return;
      matched[x.p] = true;
      var q = profs[x.p];
      if (target === null || q.age < target.age || (q.age === target.age && cohortCmp(q.p, target.p) < 0)) {
        target = q;
      }
    });
    var counts = [], adds = [];
    for (var ty = 0; ty < ranks; ty++) counts.push(0);
    Object.keys(matched).forEach(function (p) {
      profs[p].c.forEach(function (c, t) { counts[t] += c; });
      adds = adds.concat(profs[p].a);
    });
    pre.forEach(function (x) {
      if (x.p !== null) return;
      counts[x.t] += 1;
      if (win[x.t]) adds.push({ t: x.t, us: us });
    });
    // Add times that left their window never count again.
    adds = adds.filter(function (x) { return x.us > us - win[x.t]; });
    var into = target === null ? { p: io[0].n, age: Number(ev.seq) } : target;
    order.forEach(function (n) { if (matched[owner[n].p]) owner[n].p = into.p; });
    pre.forEach(function (x) {
      if (x.p === null) { owner[x.n] = { t: x.t, p: into.p }; order.push(x.n); }
    });
    Object.keys(matched).forEach(function (p) { delete profs[p]; });
    profs[into.p] = { p: into.p, age: into.age, c: counts, a: adds };
  });
  return {
    owner: order.map(function (n) { return { n: n, t: owner[n].t, p: owner[n].p }; }),
    dropped: dropped
  };
}
