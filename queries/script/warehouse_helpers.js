// Helpers of the Snowflake and BigQuery scripts that SQL cannot say exactly there, as
// JavaScript user-defined functions: each includes this text and ends with one `return` line.
// ES5 only. Text is compared by its UTF-8 bytes, as Cohort orders it.

// The UTF-8 bytes of s, one character per byte: their order is the byte order.
function cohortBytes(s) {
  return unescape(encodeURIComponent(s));
}

function cohortByteCmp(a, b) {
  var x = cohortBytes(a), y = cohortBytes(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

// The most frequent non-null value, ties broken by the smallest value, or null when it occurs
// fewer than k times.
function cohortModePick(vs, k) {
  if (vs === null || vs === undefined) return null;
  var counts = {}, best = null;
  vs.forEach(function (v) {
    if (v === null || v === undefined) return;
    v = String(v);
    counts['$' + v] = (counts['$' + v] || 0) + 1;
  });
  Object.keys(counts).forEach(function (key) {
    var v = key.substr(1), n = counts[key];
    if (best === null || n > best.n || (n === best.n && cohortByteCmp(v, best.v) < 0)) {
      best = { v: v, n: n };
    }
  });
  return best !== null && best.n >= Number(k) ? best.v : null;
}

// The distinct non-null values, sorted; null when none.
function cohortSortedDistinct(vs) {
  if (vs === null || vs === undefined) return null;
  var seen = {}, out = [];
  vs.forEach(function (v) {
    if (v === null || v === undefined) return;
    v = String(v);
    if (!seen['$' + v]) {
      seen['$' + v] = true;
      out.push(v);
    }
  });
  return out.length ? out.sort(cohortByteCmp) : null;
}

// An RFC 3339 time such as 2026-01-31T09:00:00Z, with a real date and time.
function cohortIsTime(s) {
  var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$/.exec(s);
  if (!m) return false;
  var y = +m[1], mo = +m[2], d = +m[3];
  var leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  var days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  return mo >= 1 && mo <= 12 && d >= 1 && d <= days[mo - 1] && +m[4] <= 23 && +m[5] <= 59 &&
    +m[6] <= 60 && (m[9] === undefined || (+m[9] <= 23 && +m[10] <= 59));
}

// The end of the JSON value that starts at i in text s.
function cohortJsonEnd(s, i) {
  var depth = 0, inStr = false;
  for (var j = i; j < s.length; j++) {
    var c = s.charAt(j);
    if (inStr) {
      if (c === '\\') j++;
      else if (c === '"') {
        inStr = false;
        if (depth === 0) return j + 1;
      }
    } else if (c === '"') inStr = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return j + 1;
      if (depth < 0) return j;
    } else if (depth === 0 && (c === ',' || /\s/.test(c))) return j;
  }
  return s.length;
}

// The text of the top-level member `key` of the JSON object text j (the last one, as a
// parser keeps it), or null.
function cohortJsonRaw(j, key) {
  var i = j.indexOf('{') + 1, raw = null;
  while (i > 0 && i < j.length) {
    while (/[\s,]/.test(j.charAt(i))) i++;
    if (j.charAt(i) !== '"') break;
    var end = cohortJsonEnd(j, i);
    var name = JSON.parse(j.substring(i, end));
    i = end;
    while (/[\s:]/.test(j.charAt(i))) i++;
    end = cohortJsonEnd(j, i);
    if (name === key) raw = j.substring(i, end);
    i = end;
  }
  return raw;
}

// What the top-level key of the JSON object text j holds (null, bool, int, float, timestamp,
// string, object, array), or null when the key is absent or j is no JSON object.
function cohortJsonKind(j, key) {
  var o;
  try {
    o = JSON.parse(j);
  } catch (e) {
    return null;
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o) ||
      !Object.prototype.hasOwnProperty.call(o, key)) {
    return null;
  }
  var v = o[key];
  if (v === null) return 'null';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') {
    var raw = cohortJsonRaw(j, key);
    return raw !== null && /^-?[0-9]+$/.test(raw) && Math.abs(v) <= 18446744073709551615 ? 'int' : 'float';
  }
  if (typeof v === 'string') return cohortIsTime(v) ? 'timestamp' : 'string';
  return Array.isArray(v) ? 'array' : 'object';
}
