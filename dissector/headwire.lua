-- headwire.lua: a Wireshark / tshark dissector for the headwire protocol (docs/protocol.md).
--
-- Install:  headwire dissector > ~/.local/lib/wireshark/plugins/headwire.lua
-- Or once:  tshark -X lua_script:headwire.lua -r capture.pcapng
--
-- Two protocols, as the protocol has two channels:
--   headwire_ctl   the control channel: TCP, text lines (port 50366 by default)
--   headwire_data  the data channel: UDP, binary datagrams with a CRC-32 (port 50367 by default)
-- Both are found on their preference ports (Edit > Preferences > Protocols) and, for tests and
-- servers on other ports, heuristically: a TCP stream that starts with a headwire line, a UDP
-- datagram that starts with the magic "HW" and a known version and type.
--
-- The token ties the channels together: headwire_ctl.token on a TICKET line and
-- headwire_data.token in the datagrams are the same bytes, so `headwire_data.token == <32 hex>`
-- (or `headwire_ctl.token == ... || headwire_data.token == ...`) finds one query's whole delivery.
--
-- Written for Wireshark 3.6 to 4.x (Lua 5.2 to 5.4): only the `bit` library Wireshark ships, no
-- Lua 5.3 operators. Nothing here may raise a Lua error on any input (the test suite fuzzes it):
-- every read is bounds-checked first.

local CTL_PORT = 50366
local DATA_PORT = 50367
-- The server's default maxLineBytes (src/config/settings.ts); a preference, as servers may differ.
local MAX_LINE_BYTES = 8192
-- The client's maxHeaderBytes: a delivery=tcp header larger than this is not awaited.
local MAX_TCP_HEADER_BYTES = 16 * 1024 * 1024

local bit = bit or bit32

------------------------------------------------------------------------------------------------
-- Control channel (TCP)
------------------------------------------------------------------------------------------------

local ctl = Proto("headwire_ctl", "headwire control channel")

local cf = {
  line = ProtoField.string("headwire_ctl.line", "Line"),
  command = ProtoField.string("headwire_ctl.command", "Command"),
  version = ProtoField.uint8("headwire_ctl.version", "Protocol version", base.DEC),
  server = ProtoField.string("headwire_ctl.server", "Server"),
  url = ProtoField.string("headwire_ctl.url", "URL"),
  option = ProtoField.string("headwire_ctl.option", "Query option"),
  delivery = ProtoField.string("headwire_ctl.delivery", "Delivery"),
  token = ProtoField.bytes("headwire_ctl.token", "Token"),
  udp = ProtoField.string("headwire_ctl.udp", "UDP address"),
  bytes = ProtoField.uint32("headwire_ctl.bytes", "Header bytes", base.DEC),
  chunks = ProtoField.uint32("headwire_ctl.chunks", "Chunks", base.DEC),
  cache = ProtoField.string("headwire_ctl.cache", "Cache outcome"),
  status = ProtoField.uint16("headwire_ctl.status", "HTTP status", base.DEC),
  sha256 = ProtoField.bytes("headwire_ctl.sha256", "SHA-256"),
  ttl = ProtoField.uint32("headwire_ctl.ttl", "Ticket lifetime (ms)", base.DEC),
  store = ProtoField.string("headwire_ctl.store", "Shared store"),
  error_code = ProtoField.string("headwire_ctl.error_code", "Error code"),
  error_message = ProtoField.string("headwire_ctl.error_message", "Error message"),
  count = ProtoField.uint32("headwire_ctl.count", "Entries purged", base.DEC),
  header = ProtoField.bytes("headwire_ctl.header", "Header (delivery=tcp)"),
  header_line = ProtoField.string("headwire_ctl.header.line", "Header line"),
  request_frame = ProtoField.framenum("headwire_ctl.request_frame", "Reply to the request in frame", base.NONE,
    frametype.REQUEST),
}
ctl.fields = {
  cf.line, cf.command, cf.version, cf.server, cf.url, cf.option, cf.delivery, cf.token, cf.udp, cf.bytes,
  cf.chunks, cf.cache, cf.status, cf.sha256, cf.ttl, cf.store, cf.error_code, cf.error_message, cf.count,
  cf.header, cf.header_line, cf.request_frame,
}

local ce = {
  bad_line = ProtoExpert.new("headwire_ctl.bad_line", "Not a headwire message", expert.group.MALFORMED,
    expert.severity.WARN),
  too_long = ProtoExpert.new("headwire_ctl.too_long", "Line longer than maxLineBytes (LINE_TOO_LONG)",
    expert.group.MALFORMED, expert.severity.WARN),
  error_reply = ProtoExpert.new("headwire_ctl.error", "ERROR reply", expert.group.RESPONSE_CODE,
    expert.severity.NOTE),
  bad_field = ProtoExpert.new("headwire_ctl.bad_field", "Malformed field", expert.group.MALFORMED,
    expert.severity.WARN),
}
ctl.experts = { ce.bad_line, ce.too_long, ce.error_reply, ce.bad_field }

ctl.prefs.port = Pref.uint("TCP port", CTL_PORT, "The server's control port (headwire server --port)")
ctl.prefs.max_line_bytes = Pref.uint("Longest line", MAX_LINE_BYTES,
  "The server's maxLineBytes: a longer line without LF is shown as LINE_TOO_LONG")

local SERVER_WORDS = { TICKET = true, ERROR = true, BYE = true, PONG = true, PURGED = true, AUTHORIZED = true }
-- Commands are case-insensitive (docs/protocol.md, "Framing"): `terminate` as in the seed.
local CLIENT_WORDS = { QUERY = true, PING = true, TERMINATE = true, AUTH = true, PURGE = true }

-- Per TCP stream: which port is the server's (learnt from the greeting), and the requests whose
-- replies are still due (replies come in the order of the requests). Filled on the first pass
-- only; what each reply was matched with is kept by frame, so later passes show the same.
local streams = {}
local reply_match = {} -- "frame:n" -> { url = ..., frame = ... }
-- token (hex) -> { frame = TICKET frame, url = the query's URL }: how a datagram finds its query.
local tickets = {}
-- What each hop has seen of each token, for retransmissions (see the data channel).
local seen_requests, seen_chunks = {}, {}
local data_marks = {} -- frame -> true when a datagram repeats an earlier one on its hop

local f_tcp_stream = Field.new("tcp.stream")

function ctl.init()
  streams, reply_match, tickets, seen_requests, seen_chunks, data_marks = {}, {}, {}, {}, {}, {}
end

local function stream_state(pinfo)
  local field = f_tcp_stream()
  local key = field and tostring(field.value) or (tostring(pinfo.src) .. ":" .. pinfo.src_port .. "-" ..
    tostring(pinfo.dst) .. ":" .. pinfo.dst_port)
  local state = streams[key]
  if not state then
    state = { server_port = nil, pending = {}, first = 1, last = 0 }
    streams[key] = state
  end
  return state
end

-- Requests still due are pending[first .. last]: a queue with an explicit head and tail (Lua's
-- length operator is unreliable once the head has moved).
local function push_request(state, request)
  state.last = state.last + 1
  state.pending[state.last] = request
end

local function words_of(text)
  local words = {}
  for word in text:gmatch("[^ \t]+") do words[#words + 1] = word end
  return words
end

-- Where in `text` (0-based) the n-th word starts, so fields point at their bytes.
local function word_offsets(text)
  local offsets = {}
  local at = 1
  while true do
    local s, e = text:find("[^ \t]+", at)
    if not s then break end
    offsets[#offsets + 1] = { s - 1, e - s + 1 }
    at = e + 1
  end
  return offsets
end

local function hex_bytes(hex)
  if not hex or not hex:match("^%x+$") or #hex % 2 ~= 0 then return nil end
  return ByteArray.new(hex)
end

-- Is this line from the server? The greeting names the server's side; before it (a capture that
-- began mid-session) the preference port, then the first word decide.
local function from_server(pinfo, state, first_word)
  if state.server_port then return pinfo.src_port == state.server_port end
  if pinfo.src_port == ctl.prefs.port then return true end
  if pinfo.dst_port == ctl.prefs.port then return false end
  if first_word:match("^HEADWIRE/") or SERVER_WORDS[first_word] then return true end
  return false
end

local function short(text, max)
  if #text > max then return text:sub(1, max) .. "…" end
  return text
end

local function plural(n, word)
  if n == 1 then return n .. " " .. word end
  return n .. " " .. word .. "s"
end

-- Adds key=value words of a TICKET line; returns them as a table.
local function ticket_fields(tree, tvb, line_at, text, offsets, words, first)
  local values = {}
  for i = first, #words do
    local word = words[i]
    local eq = word:find("=", 1, true)
    local range = tvb(line_at + offsets[i][1], offsets[i][2])
    if eq and eq > 1 then
      local key, value = word:sub(1, eq - 1), word:sub(eq + 1)
      values[key] = value
      local vrange = tvb(line_at + offsets[i][1] + eq, offsets[i][2] - eq)
      if key == "token" then
        local token = hex_bytes(value)
        if token and token:len() == 16 then
          -- The hex text becomes bytes, as in the datagrams, so both token fields compare equal.
          tree:add(cf.token, token:tvb("Ticket token")())
        else
          tree:add_proto_expert_info(ce.bad_field, "token is not 32 hex digits")
        end
      elseif key == "sha256" then
        local digest = hex_bytes(value)
        if digest and digest:len() == 32 then tree:add(cf.sha256, digest:tvb("SHA-256")()) end
      elseif key == "udp" then
        tree:add(cf.udp, vrange)
      elseif key == "bytes" or key == "chunks" or key == "ttl" or key == "status" then
        local n = tonumber(value:match("^%d+$") or "")
        if n and n <= 4294967295 then
          if key == "status" and n <= 65535 then tree:add(cf.status, vrange, n)
          elseif key ~= "status" then tree:add(cf[key], vrange, n) end
        else
          tree:add_proto_expert_info(ce.bad_field, key .. " is not a number")
        end
      elseif key == "cache" then
        tree:add(cf.cache, vrange)
      elseif key == "delivery" then
        tree:add(cf.delivery, vrange)
      elseif key == "store" then
        tree:add(cf.store, vrange)
      else
        tree:add(cf.option, range)
      end
    else
      tree:add(cf.option, range)
    end
  end
  return values
end

-- Header bytes as one text item a line (at most `max` lines): a delivery=tcp body, a chunk's payload.
local function add_lines(tree, field, tvb, at, length, max)
  local raw = tvb:raw(at, length)
  local start = 1
  local shown = 0
  while start <= #raw and shown < max do
    local lf = raw:find("\n", start, true)
    local stop = lf or #raw
    tree:add(field, tvb(at + start - 1, stop - start + 1))
    shown = shown + 1
    start = stop + 1
  end
end

-- The header lines of a delivery=tcp body.
local function add_header_lines(tree, tvb, at, length)
  add_lines(tree, cf.header_line, tvb, at, length, 200)
end

-- One message at `at`: returns the bytes it takes, or nil and how many more bytes are needed.
local function dissect_ctl_message(tvb, pinfo, tree, at, index, infos)
  local available = tvb:len() - at
  local limit = ctl.prefs.max_line_bytes + 1 -- room for the CR before the LF
  local scan = math.min(available, limit + 1)
  local window = tvb:raw(at, scan)
  local lf = window:find("\n", 1, true)
  if not lf then
    if available <= limit then return nil, DESEGMENT_ONE_MORE_SEGMENT end
    -- The server would skip to the next LF and answer LINE_TOO_LONG; so does the display.
    local item = tree:add(ctl, tvb(at, available), "Line too long")
    item:add_proto_expert_info(ce.too_long)
    infos[#infos + 1] = "[line too long]"
    return available
  end
  local line_length = lf - 1
  local text = window:sub(1, line_length)
  if text:sub(-1) == "\r" then text = text:sub(1, -2) end
  local words = words_of(text)
  local offsets = word_offsets(text)
  local first = words[1] or ""
  local state = stream_state(pinfo)
  local server = from_server(pinfo, state, first)

  -- A TICKET delivery=tcp line is followed by exactly bytes= octets of header, raw: one PDU.
  local body = 0
  if server and first == "TICKET" and text:find(" delivery=tcp", 1, true) then
    local n = tonumber(text:match(" bytes=(%d+)") or "")
    if n and n <= MAX_TCP_HEADER_BYTES then body = n end
  end
  if body > 0 and available < lf + body then return nil, lf + body - available end

  local item = tree:add(ctl, tvb(at, lf + body))
  local subtree = item
  subtree:add(cf.line, tvb(at, #text), text)
  local info
  if first ~= "" then subtree:add(cf.command, tvb(at + offsets[1][1], offsets[1][2]), first) end
  local upper = first:upper()
  local key = pinfo.number .. ":" .. index

  if server then
    -- A reply, except the greeting and an unsolicited ERROR before a close, answers the oldest
    -- request still due on this stream.
    if first:match("^HEADWIRE/") then
      if not pinfo.visited then state.server_port = pinfo.src_port end
      local version = tonumber(first:match("^HEADWIRE/(%d+)$") or "")
      if version and version <= 255 then subtree:add(cf.version, tvb(at + offsets[1][1] + 9, offsets[1][2] - 9), version) end
      if words[3] then subtree:add(cf.server, tvb(at + offsets[3][1], #text - offsets[3][1])) end
      info = text
    else
      if not pinfo.visited then
        local request = state.pending[state.first]
        if request then
          state.pending[state.first] = nil
          state.first = state.first + 1
          reply_match[key] = request
        end
      end
      local request = reply_match[key]
      if request then
        subtree:add(cf.request_frame, tvb(at, 0), request.frame):set_generated()
        if request.url and first == "TICKET" then
          subtree:add(cf.url, tvb(at, 0), request.url):set_generated()
        end
      end
      if first == "TICKET" then
        local values = ticket_fields(subtree, tvb, at, text, offsets, words, 2)
        local bytes = tonumber(values.bytes or "") or 0
        if values.delivery == "tcp" then
          info = string.format("TICKET %d B over TCP %s", bytes, values.cache or "?")
          if body > 0 then
            local header = subtree:add(cf.header, tvb(at + lf, body))
            add_header_lines(header, tvb, at + lf, body)
          end
        else
          local chunks = tonumber(values.chunks or "") or 0
          info = string.format("TICKET %d B %s %s", bytes, plural(chunks, "chunk"), values.cache or "?")
          local token = values.token and values.token:lower()
          if token and not pinfo.visited and #token == 32 then
            tickets[token] = { frame = pinfo.number, url = request and request.url }
          end
        end
      elseif first == "ERROR" then
        local code = words[2] or ""
        if words[2] then subtree:add(cf.error_code, tvb(at + offsets[2][1], offsets[2][2])) end
        if words[3] then subtree:add(cf.error_message, tvb(at + offsets[3][1], #text - offsets[3][1])) end
        subtree:add_proto_expert_info(ce.error_reply, "ERROR " .. code)
        info = short(text, 80)
      elseif first == "PURGED" then
        local n = tonumber(words[2] or "")
        if n and n <= 4294967295 then subtree:add(cf.count, tvb(at + offsets[2][1], offsets[2][2]), n) end
        info = text
      elseif SERVER_WORDS[first] then
        info = text
      else
        subtree:add_proto_expert_info(ce.bad_line)
        info = "[not headwire] " .. short(text, 40)
      end
    end
  else
    local request = { frame = pinfo.number }
    if upper == "QUERY" then
      if words[2] then
        subtree:add(cf.url, tvb(at + offsets[2][1], offsets[2][2]))
        request.url = words[2]
        for i = 3, #words do
          local range = tvb(at + offsets[i][1], offsets[i][2])
          local delivery = words[i]:match("^delivery=(.*)$")
          if delivery then subtree:add(cf.delivery, tvb(at + offsets[i][1] + 9, #delivery)) end
          subtree:add(cf.option, range)
        end
      end
      info = short(text, 100)
    elseif upper == "PURGE" then
      if words[2] then subtree:add(cf.url, tvb(at + offsets[2][1], offsets[2][2])) end
      info = short(text, 100)
    elseif upper == "AUTH" then
      -- The admin token is a secret: shown in the bytes, not repeated in the Info column.
      info = "AUTH …"
    elseif CLIENT_WORDS[upper] then
      info = text
    else
      -- The server answers these with an ERROR too: they still take a reply.
      subtree:add_proto_expert_info(ce.bad_line)
      info = "[bad line] " .. short(text, 40)
    end
    if not pinfo.visited then push_request(state, request) end
  end
  item:append_text(": " .. info)
  infos[#infos + 1] = info
  return lf + body
end

function ctl.dissector(tvb, pinfo, tree)
  local length = tvb:len()
  if length == 0 or length ~= tvb:reported_len() then return 0 end
  local at = 0
  local index = 0
  local infos = {}
  while at < length do
    local used, more = dissect_ctl_message(tvb, pinfo, tree, at, index, infos)
    if not used then
      pinfo.desegment_offset = at
      pinfo.desegment_len = more
      break
    end
    at = at + used
    index = index + 1
  end
  if #infos > 0 then
    pinfo.cols.protocol = "HEADWIRE"
    pinfo.cols.info = table.concat(infos, ", ")
  end
  return length
end

-- A TCP stream is headwire's when its first bytes are a greeting or a client command.
local function ctl_heuristic(tvb, pinfo, tree)
  local length = tvb:len()
  if length < 3 then return false end
  local head = tvb:raw(0, math.min(length, 12))
  local word = head:match("^([%a/%d]+)") or ""
  local upper = word:upper()
  local looks = head:match("^HEADWIRE/%d") ~= nil or
    ((CLIENT_WORDS[upper]) and (#head > #word) and head:sub(#word + 1, #word + 1):match("[ \t\r\n]") ~= nil)
  if not looks then return false end
  pinfo.conversation = ctl
  ctl.dissector(tvb, pinfo, tree)
  return true
end

------------------------------------------------------------------------------------------------
-- Data channel (UDP)
------------------------------------------------------------------------------------------------

local data = Proto("headwire_data", "headwire data channel")

local TYPE_NAMES = { [1] = "REQUEST", [2] = "CHUNK", [3] = "DROPS" }
local CRC_STATUS = { [0] = "Bad", [1] = "Good", [2] = "Unverified" }

local df = {
  magic = ProtoField.string("headwire_data.magic", "Magic"),
  version = ProtoField.uint8("headwire_data.version", "Version", base.DEC),
  type = ProtoField.uint8("headwire_data.type", "Type", base.DEC, TYPE_NAMES),
  token = ProtoField.bytes("headwire_data.token", "Token"),
  request_number = ProtoField.uint32("headwire_data.request_number", "Request number", base.DEC),
  range_count = ProtoField.uint16("headwire_data.range_count", "Ranges", base.DEC),
  range = ProtoField.string("headwire_data.range", "Range"),
  range_first = ProtoField.uint32("headwire_data.range.first", "First chunk", base.DEC),
  range_chunks = ProtoField.uint16("headwire_data.range.count", "Chunks", base.DEC),
  chunk_index = ProtoField.uint32("headwire_data.chunk.index", "Chunk index (0-based)", base.DEC),
  chunk_count = ProtoField.uint32("headwire_data.chunk.count", "Chunk count", base.DEC),
  total = ProtoField.uint32("headwire_data.total", "Header bytes in all", base.DEC),
  chunk_offset = ProtoField.uint32("headwire_data.chunk.offset", "Offset in the header", base.DEC),
  payload = ProtoField.bytes("headwire_data.payload", "Payload"),
  payload_line = ProtoField.string("headwire_data.payload.line", "Header text"),
  drops = ProtoField.uint32("headwire_data.drops", "Datagrams dropped by the client's kernel", base.DEC),
  crc = ProtoField.uint32("headwire_data.crc", "CRC-32", base.HEX),
  crc_computed = ProtoField.uint32("headwire_data.crc.computed", "CRC-32 computed", base.HEX),
  crc_status = ProtoField.uint8("headwire_data.crc.status", "CRC-32 status", base.DEC, CRC_STATUS),
  ticket_frame = ProtoField.framenum("headwire_data.ticket_frame", "Ticket in frame", base.NONE),
  url = ProtoField.string("headwire_data.url", "URL of the query"),
  retransmission = ProtoField.bool("headwire_data.retransmission", "Asked for or sent before on this path"),
}
data.fields = {
  df.magic, df.version, df.type, df.token, df.request_number, df.range_count, df.range, df.range_first,
  df.range_chunks, df.chunk_index, df.chunk_count, df.total, df.chunk_offset, df.payload, df.payload_line,
  df.drops, df.crc, df.crc_computed, df.crc_status, df.ticket_frame, df.url, df.retransmission,
}

local de = {
  crc_bad = ProtoExpert.new("headwire_data.crc.bad", "Bad CRC-32: the datagram was corrupted (a receiver drops it)",
    expert.group.CHECKSUM, expert.severity.ERROR),
  malformed = ProtoExpert.new("headwire_data.malformed", "Malformed headwire datagram", expert.group.MALFORMED,
    expert.severity.ERROR),
  retransmission = ProtoExpert.new("headwire_data.retransmission.expert",
    "Chunks asked for (or sent) again on this path: a loss was repaired", expert.group.SEQUENCE,
    expert.severity.NOTE),
  unknown_type = ProtoExpert.new("headwire_data.unknown_type", "Unknown datagram type", expert.group.UNDECODED,
    expert.severity.WARN),
}
data.experts = { de.crc_bad, de.malformed, de.retransmission, de.unknown_type }

data.prefs.port = Pref.uint("UDP port", DATA_PORT, "The server's data port (headwire server --data-port)")

-- CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as zlib computes it: datagram.ts uses
-- node:zlib's crc32. Values are kept as non-negative Lua numbers below 2^32.
local CRC_TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if bit.band(c, 1) == 1 then c = bit.bxor(bit.rshift(c, 1), 0xEDB88320) else c = bit.rshift(c, 1) end
  end
  CRC_TABLE[i] = c
end

local function unsigned(n)
  if n < 0 then return n + 4294967296 end
  return n
end

local function crc32(raw)
  local c = 0xFFFFFFFF
  for i = 1, #raw do
    c = bit.bxor(CRC_TABLE[bit.band(bit.bxor(c, raw:byte(i)), 0xFF)], bit.rshift(c, 8))
  end
  return unsigned(bit.bxor(c, 0xFFFFFFFF))
end

-- The hop a datagram travels (a relay makes two hops of one path): retransmissions are per hop.
local function hop_key(pinfo, token_hex)
  return token_hex .. "|" .. tostring(pinfo.src) .. ":" .. pinfo.src_port .. ">" .. tostring(pinfo.dst) .. ":" ..
    pinfo.dst_port
end

local function range_text(first, count)
  if count == 1 then return tostring(first) end
  return first .. "-" .. (first + count - 1)
end

local function add_payload_lines(tree, tvb, at, length)
  add_lines(tree, df.payload_line, tvb, at, length, 100)
end

-- Marks a datagram as a repeat on its hop (computed on the first pass, kept by frame number).
local function mark_repeat(tree, tvb, pinfo, repeated)
  if not pinfo.visited and repeated then data_marks[pinfo.number] = true end
  if data_marks[pinfo.number] then
    tree:add(df.retransmission, tvb(0, 0), true):set_generated()
    tree:add_proto_expert_info(de.retransmission)
    return true
  end
  return false
end

local function dissect_request(tvb, pinfo, tree, at, body_end, token_hex)
  if body_end - at < 2 then return nil end
  local n = tvb(at, 2):uint()
  tree:add(df.range_count, tvb(at, 2))
  if n < 1 or n > 64 or at + 2 + 6 * n ~= body_end then
    tree:add_proto_expert_info(de.malformed, "range count and length disagree")
    return "REQUEST (malformed)"
  end
  local key = hop_key(pinfo, token_hex)
  local seen = seen_requests[key] or {}
  seen_requests[key] = seen
  local repeated = false
  local texts = {}
  for i = 0, n - 1 do
    local o = at + 2 + 6 * i
    local first, count = tvb(o, 4):uint(), tvb(o + 4, 2):uint()
    local text = range_text(first, count)
    local item = tree:add(df.range, tvb(o, 6), text)
    item:add(df.range_first, tvb(o, 4))
    item:add(df.range_chunks, tvb(o + 4, 2))
    texts[#texts + 1] = text
    if not pinfo.visited then
      -- At most 64 chunks a request are served; a bigger range is clipped by the server too.
      for index = first, first + math.min(count, 64) - 1 do
        if seen[index] then repeated = true end
        seen[index] = true
      end
    end
  end
  local info = "REQUEST " .. table.concat(texts, ",")
  if mark_repeat(tree, tvb, pinfo, repeated) then info = info .. " [again]" end
  return info
end

local function dissect_chunk(tvb, pinfo, tree, at, body_end, token_hex)
  if body_end - at < 16 then
    tree:add_proto_expert_info(de.malformed, "too short for a CHUNK")
    return "CHUNK (malformed)"
  end
  local index, count = tvb(at, 4):uint(), tvb(at + 4, 4):uint()
  local total, offset = tvb(at + 8, 4):uint(), tvb(at + 12, 4):uint()
  local payload_length = body_end - at - 16
  tree:add(df.chunk_index, tvb(at, 4))
  tree:add(df.chunk_count, tvb(at + 4, 4))
  tree:add(df.total, tvb(at + 8, 4))
  tree:add(df.chunk_offset, tvb(at + 12, 4))
  if payload_length > 0 then
    local payload = tree:add(df.payload, tvb(at + 16, payload_length))
    add_payload_lines(payload, tvb, at + 16, payload_length)
  end
  if count < 1 or index >= count or offset + payload_length > total then
    tree:add_proto_expert_info(de.malformed, "index, count, offset and total disagree")
  end
  local key = hop_key(pinfo, token_hex)
  local seen = seen_chunks[key] or {}
  seen_chunks[key] = seen
  local repeated = false
  if not pinfo.visited then
    repeated = seen[index] == true
    seen[index] = true
  end
  -- Shown 1-based, as the demo and docs/protocol.md's sequences print it ("CHUNK 2/4").
  local info = string.format("CHUNK %d/%d %d B", index + 1, count, payload_length)
  if mark_repeat(tree, tvb, pinfo, repeated) then info = info .. " [again]" end
  return info
end

local function dissect_drops(tvb, tree, at, body_end)
  if body_end - at ~= 4 then
    tree:add_proto_expert_info(de.malformed, "a DROPS datagram is 32 bytes")
    return "DROPS (malformed)"
  end
  tree:add(df.drops, tvb(at, 4))
  return "DROPS " .. tvb(at, 4):uint()
end

function data.dissector(tvb, pinfo, tree)
  local length = tvb:len()
  if length < 4 or length ~= tvb:reported_len() then return 0 end
  pinfo.cols.protocol = "HEADWIRE-DATA"
  local root = tree:add(data, tvb())
  root:add(df.magic, tvb(0, 2))
  local version = tvb(2, 1):uint()
  local kind = tvb(3, 1):uint()
  root:add(df.version, tvb(2, 1))
  root:add(df.type, tvb(3, 1))
  local info
  -- Version 1: no request number (docs/protocol.md, "Datagram layout"); DROPS exists only in 2.
  local at = (version == 1) and 20 or 24
  if tvb(0, 2):raw() ~= "HW" or (version ~= 1 and version ~= 2) or length < at + 4 then
    root:add_proto_expert_info(de.malformed, "not a headwire datagram of version 1 or 2, or too short")
    pinfo.cols.info = "headwire datagram (malformed)"
    return length
  end
  local token = tvb(4, 16)
  local token_hex = token:bytes():tohex(true)
  root:add(df.token, token)
  if version == 2 then root:add(df.request_number, tvb(20, 4)) end
  local ticket = tickets[token_hex]
  if ticket then
    root:add(df.ticket_frame, tvb(4, 16), ticket.frame):set_generated()
    if ticket.url then root:add(df.url, tvb(4, 16), ticket.url):set_generated() end
  end
  local body_end = length - 4
  if kind == 1 then
    info = dissect_request(tvb, pinfo, root, at, body_end, token_hex) or "REQUEST (malformed)"
  elseif kind == 2 then
    info = dissect_chunk(tvb, pinfo, root, at, body_end, token_hex)
  elseif kind == 3 and version == 2 then
    info = dissect_drops(tvb, root, at, body_end)
  else
    root:add_proto_expert_info(de.unknown_type, "type " .. kind .. " in version " .. version)
    info = "type " .. kind
  end
  -- The CRC-32 covers every byte before it (docs/protocol.md): a bad one is flagged, as a
  -- receiver would drop the datagram.
  local sent = tvb(body_end, 4):uint()
  local computed = crc32(tvb:raw(0, body_end))
  local crc_item = root:add(df.crc, tvb(body_end, 4))
  if sent == computed then
    root:add(df.crc_status, tvb(body_end, 4), 1):set_generated()
    crc_item:append_text(" [correct]")
  else
    root:add(df.crc_computed, tvb(body_end, 4), computed):set_generated()
    root:add(df.crc_status, tvb(body_end, 4), 0):set_generated()
    crc_item:append_text(string.format(" [incorrect, should be 0x%08x]", computed))
    crc_item:add_proto_expert_info(de.crc_bad)
    info = info .. " [CRC bad]"
  end
  root:append_text(": " .. info)
  pinfo.cols.info = info
  return length
end

-- A UDP datagram is headwire's when it has the magic, version 1 or 2 and a known type, and the
-- shortest length a datagram of that version has. A corrupted datagram whose magic survived is
-- still shown (with its bad CRC); one corrupted in the magic is recognised on the data port only.
local function data_heuristic(tvb, pinfo, tree)
  local length = tvb:len()
  if length < 26 then return false end
  if tvb(0, 2):raw() ~= "HW" then return false end
  local version, kind = tvb(2, 1):uint(), tvb(3, 1):uint()
  if version ~= 1 and version ~= 2 then return false end
  if not TYPE_NAMES[kind] then return false end
  data.dissector(tvb, pinfo, tree)
  return true
end

------------------------------------------------------------------------------------------------
-- Registration
------------------------------------------------------------------------------------------------

local registered = { tcp = nil, udp = nil }

local function register_ports()
  local tcp_table, udp_table = DissectorTable.get("tcp.port"), DissectorTable.get("udp.port")
  if registered.tcp then tcp_table:remove(registered.tcp, ctl) end
  if registered.udp then udp_table:remove(registered.udp, data) end
  registered.tcp, registered.udp = ctl.prefs.port, data.prefs.port
  if registered.tcp > 0 then tcp_table:add(registered.tcp, ctl) end
  if registered.udp > 0 then udp_table:add(registered.udp, data) end
end

ctl.prefs_changed = register_ports
data.prefs_changed = register_ports
register_ports()
ctl:register_heuristic("tcp", ctl_heuristic)
data:register_heuristic("udp", data_heuristic)
