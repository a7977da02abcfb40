-- post.lua - wrk script of `make bench`: POSTs agent-desktop batches and counts the answers.
--
-- Environment (set by bench/run.sh):
--   BENCH_PAYLOAD   template file written by bench/payload.py (the text @ID@ marks the tag)
--   BENCH_RUN       4 hex digits naming this load point; tags are RUN + thread (4) + counter (8)
--   BENCH_TOKENS    how many bearer tokens to rotate over (bench-token-0 .. N-1), default 1
--   BENCH_OK        the status that acknowledges a batch: 202 (tlm) or 204 (nginx, no
--                   response hook: answers are counted from wrk's summary)
--   BENCH_ACKED     file where done() writes the tag of every acknowledged batch, one a line
--   BENCH_SUMMARY   file where done() writes the figures as key=value lines
--
-- Each request is one of BENCH_TOKENS prebuilt heads plus the body with the tag put in.
-- Every request carries a new tag (batchId and each record's interactionId), so written
-- lines can be matched to acknowledged batches and no two batches share a rid.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local parts, heads, nheads, run, me, prefix, ok_status
local counter = 0
sent, ok, other, accepted = 0, 0, 0, 0
statuses = {}
-- The tags of acknowledged batches, ACKED_CHUNK at a time joined into one string. LuaJIT's
-- collector marks a table in one step, and a table of 450 000 tags (1 x 32 for 10 s) held
-- wrk still for milliseconds at each collection (every answer makes garbage): tlm's p99 at
-- 1 x 32 read 4-26 ms against a p50 of 0.6, and 2.0 ms with the chunks.
-- (globals: done() reads them with thread:get)
acked = {}                    -- full chunks: "tag\ntag\n...\n"
pending, npending = {}, 0     -- the tags of the chunk being filled: pending[1..npending]
local ACKED_CHUNK = 4096

local function read_file(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("*a")
   f:close()
   return s
end

-- splits s on the literal sep: table.concat(result, x) puts x back where sep was
local function split(s, sep)
   local out, pos = {}, 1
   while true do
      local a, b = string.find(s, sep, pos, true)
      if not a then
         out[#out + 1] = string.sub(s, pos)
         return out
      end
      out[#out + 1] = string.sub(s, pos, a - 1)
      pos = b + 1
   end
end

function init(args)
   local template = read_file(assert(os.getenv("BENCH_PAYLOAD"), "BENCH_PAYLOAD"))
   parts = split(template, "@ID@")
   run = os.getenv("BENCH_RUN") or "0000"
   ok_status = tonumber(os.getenv("BENCH_OK") or "202")
   me = tonumber(_G.tid) or 0
   prefix = run .. string.format("%04x", me)
   -- the whole head of each request, built once per token: tags have a fixed length, so the
   -- body length is known (wrk.format per request would cost the load generator a lot)
   local body_len = #template + (#parts - 1) * 12
   local n = tonumber(os.getenv("BENCH_TOKENS") or "1")
   heads = {}
   for i = 0, n - 1 do
      heads[#heads + 1] = "POST /api/v1/telemetry HTTP/1.1\r\n" ..
         "Host: " .. wrk.headers["Host"] .. "\r\n" ..
         "Content-Type: application/json\r\n" ..
         "Authorization: Bearer bench-token-" .. i .. "\r\n" ..
         "Content-Length: " .. body_len .. "\r\n\r\n"
   end
   nheads = #heads
end

function request()
   local tag = prefix .. string.format("%08x", counter)
   local head = heads[(counter % nheads) + 1]
   counter = counter + 1
   sent = sent + 1
   if #parts == 3 then
      return head .. parts[1] .. tag .. parts[2] .. tag .. parts[3]
   end
   return head .. table.concat(parts, tag)
end

-- tlm: every answer is looked at (accepted count, batchId of each 202). nginx: no response
-- hook at all (wrk then skips handing each answer to Lua, which costs it a third of its
-- request rate); its 204s are the requests without a status error.
local find, sub = string.find, string.sub
local function track(status, headers, body)
   if status == ok_status then
      ok = ok + 1
      -- {"accepted":N,"rejected":[...],"batchId":"<16 hex>"}: plain finds, no patterns
      local _, a = find(body, '"accepted":', 1, true)
      if a then
         local e = find(body, ",", a + 1, true)
         accepted = accepted + (tonumber(sub(body, a + 1, (e or 0) - 1)) or 0)
      end
      local _, b = find(body, '"batchId":"', 1, true)
      npending = npending + 1
      pending[npending] = b and sub(body, b + 1, b + 16) or "?"
      if npending == ACKED_CHUNK then
         acked[#acked + 1] = table.concat(pending, "\n", 1, npending) .. "\n"
         npending = 0
      end
   else
      other = other + 1
      statuses[status] = (statuses[status] or 0) + 1
   end
end

if (os.getenv("BENCH_OK") or "202") == "202" then
   response = track
end

function done(summary, latency, requests)
   local t_sent, t_ok, t_other, t_acc = 0, 0, 0, 0
   local st = {}
   local af = os.getenv("BENCH_ACKED") and assert(io.open(os.getenv("BENCH_ACKED"), "w"))
   for _, t in ipairs(threads) do
      t_sent = t_sent + t:get("sent")
      t_ok = t_ok + t:get("ok")
      t_other = t_other + t:get("other")
      t_acc = t_acc + t:get("accepted")
      for k, v in pairs(t:get("statuses")) do
         st[k] = (st[k] or 0) + v
      end
      if af then
         af:write(table.concat(t:get("acked")))
         local p, n = t:get("pending"), t:get("npending")
         if n > 0 then af:write(table.concat(p, "\n", 1, n), "\n") end
      end
   end
   if af then af:close() end
   if not response then   -- no hook: wrk counts statuses above 399 as errors.status
      t_ok = summary.requests - summary.errors.status
      t_other = summary.errors.status
   end
   local codes = {}
   for k, v in pairs(st) do codes[#codes + 1] = k .. ":" .. v end
   local e = summary.errors
   local out = {
      "duration_us=" .. summary.duration,
      "responses=" .. summary.requests,
      "sent=" .. t_sent,
      "ok=" .. t_ok,
      "non_ok=" .. t_other,
      "non_ok_codes=" .. (#codes > 0 and table.concat(codes, ",") or "-"),
      "accepted=" .. t_acc,
      "bytes=" .. summary.bytes,
      "errors=" .. (e.connect + e.read + e.write + e.timeout),
      "errors_detail=connect:" .. e.connect .. ",read:" .. e.read .. ",write:" .. e.write ..
         ",timeout:" .. e.timeout .. ",status:" .. e.status,
      "p50_us=" .. latency:percentile(50),
      "p99_us=" .. latency:percentile(99),
      "max_us=" .. latency.max,
   }
   local text = table.concat(out, "\n") .. "\n"
   local path = os.getenv("BENCH_SUMMARY")
   if path then
      local f = assert(io.open(path, "w"))
      f:write(text)
      f:close()
   end
   io.write(text)
end
