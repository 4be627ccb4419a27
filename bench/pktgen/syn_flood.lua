-- syn_flood.lua: a SYN flood for pktgen-dpdk's range mode, toward ctlb.
--
-- Sends TCP SYNs from random source addresses in 198.18.0.0/15 and random
-- source ports (32768-65535), with random sequence numbers, to one server
-- address and port, at `rate_pct` percent of the line rate for
-- `duration_s` seconds, then prints what the port sent. Every SYN of a new
-- 4-tuple makes ctlb open a connection (SYN_SENT): the flood measures the
-- connection set-up rate and what happens when the flow table fills up
-- (ctlb counters flows_created, flows_evicted, flows_reclaimed,
-- untracked_table_full; see README.md).
--
--   pktgen -l 0-2 -n 4 -a 0000:81:00.0 -a 0000:81:00.1 -- -P -m "[1].0, [2].1" -f syn_flood.lua
--   or, at the pktgen prompt:  script syn_flood.lua   (or: lua 'dofile("syn_flood.lua")')
--
-- Written from pktgen-dpdk's documented Lua and CLI commands; NOT run here
-- (pktgen is not packaged in Debian 12). Check it on your pktgen version.
--
-- How it works: range mode builds IPv4/TCP packets (src ip, src port and
-- seq step through their ranges); pktgen's random bitfields ("rnd", applied
-- to every transmitted packet) then overwrite the low 17 bits of the source
-- address, the source port, the sequence number and the TCP flags (SYN
-- only). The offsets below assume untagged Ethernet + IPv4 without options.
-- The random bits are applied after the checksums were computed: unless the
-- NIC computes them (TX checksum offload), the IP and TCP checksums of the
-- flood are wrong. ctlb does not verify checksums, so this does not change
-- what it tracks; a real host behind it would drop such packets.

package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"

---------------------------------------------------------------- settings
local port        = "0"                  -- pktgen port cabled to ctlb's client-side port
local rate_pct    = 10                   -- percent of line rate (64-byte frames: 10G line = 14.88 Mpps at 100)
local duration_s  = 30                   -- seconds of flood
local pkt_size    = 64                   -- frame size, 4-byte FCS included (pktgen's "size"; 64 = minimum)
local server_ip   = "198.19.0.1"         -- the one server address (198.18.0.0/15 benchmarking range)
local server_port = 80
local src_mac     = "02:00:5e:10:00:01"  -- ctlb forwards any MAC (promiscuous bump in the wire)
local dst_mac     = "02:00:5e:10:00:02"
local use_random  = true                 -- false: plain range stepping (distinct but sequential tuples)
----------------------------------------------------------------------------

local function call(name, f, ...)
  if type(f) ~= "function" then
    printf("syn_flood: this pktgen has no %s, skipped\n", name)
    return
  end
  local ok, err = pcall(f, ...)
  if not ok then printf("syn_flood: %s failed: %s\n", name, tostring(err)) end
end

local r = pktgen.range

-- Addresses and ports: the range the flood walks through (also the fallback
-- when random bitfields are off).
call("range.dst_mac", r.dst_mac, port, "start", dst_mac)
call("range.src_mac", r.src_mac, port, "start", src_mac)

call("range.dst_ip", r.dst_ip, port, "start", server_ip)
call("range.dst_ip", r.dst_ip, port, "inc", "0.0.0.0")
call("range.dst_ip", r.dst_ip, port, "min", server_ip)
call("range.dst_ip", r.dst_ip, port, "max", server_ip)

call("range.src_ip", r.src_ip, port, "start", "198.18.0.1")
call("range.src_ip", r.src_ip, port, "inc", "0.0.0.1")
call("range.src_ip", r.src_ip, port, "min", "198.18.0.1")
call("range.src_ip", r.src_ip, port, "max", "198.19.255.254")

call("range.dst_port", r.dst_port, port, "start", server_port)
call("range.dst_port", r.dst_port, port, "inc", 0)
call("range.dst_port", r.dst_port, port, "min", server_port)
call("range.dst_port", r.dst_port, port, "max", server_port)

call("range.src_port", r.src_port, port, "start", 32768)
call("range.src_port", r.src_port, port, "inc", 1)
call("range.src_port", r.src_port, port, "min", 32768)
call("range.src_port", r.src_port, port, "max", 65535)

call("range.pkt_size", r.pkt_size, port, "start", pkt_size)
call("range.pkt_size", r.pkt_size, port, "inc", 0)
call("range.pkt_size", r.pkt_size, port, "min", pkt_size)
call("range.pkt_size", r.pkt_size, port, "max", pkt_size)

call("set_type", pktgen.set_type, port, "ipv4")
call("range.ip_proto", r.ip_proto, port, "tcp")
call("set_proto", pktgen.set_proto, port, "tcp")

-- Random bitfields: offset in bytes from the start of the frame, 32-bit
-- mask: 0/1 force a bit, X randomises it, . keeps it ('_' separates bytes).
--   26: IPv4 source address: 198 (11000110), 18/19 (0001001X), 16 random bits
--   34: source port 32768-65535 (1 + 15 random bits), destination port kept
--   38: sequence number, random
--   44: the last 2 bytes of the ack number and the data offset kept, TCP
--       flags = 0x02 (SYN only; range mode sends ACK-flagged packets otherwise)
call("rnd", pktgen.rnd, port, 0, 26, "11000110_0001001X_XXXXXXXX_XXXXXXXX")
call("rnd", pktgen.rnd, port, 1, 34, "1XXXXXXX_XXXXXXXX_........_........")
call("rnd", pktgen.rnd, port, 2, 38, use_random and "XXXXXXXX_XXXXXXXX_XXXXXXXX_XXXXXXXX" or "off")
call("rnd", pktgen.rnd, port, 3, 44, "........_........_........_00000010")
if not use_random then
  -- Keep only the SYN flags field; the addresses and ports step through the range.
  call("rnd", pktgen.rnd, port, 0, 26, "off")
  call("rnd", pktgen.rnd, port, 1, 34, "off")
end

call("set rate", pktgen.set, port, "rate", rate_pct)
call("set_range", pktgen.set_range, port, "on")

printf("syn_flood: port %s, %d%% of line rate, %d s, SYNs to %s:%d from 198.18.0.0/15\n",
       port, rate_pct, duration_s, server_ip, server_port)
call("clr", pktgen.clr)
pktgen.start(port)
pktgen.sleep(duration_s)
pktgen.stop(port)
pktgen.delay(500)

local ok, stats = pcall(pktgen.portStats, port, "port")
if ok and type(stats) == "table" then
  local s = stats[tonumber(port)] or stats[port] or {}
  local sent = s.opackets or 0
  printf("syn_flood: sent %d SYNs in %d s (%.2f Mpps); compare with ctlb's flows_created\n",
         sent, duration_s, sent / duration_s / 1e6)
else
  printf("syn_flood: done; see 'page stats' for what the port sent\n")
end
