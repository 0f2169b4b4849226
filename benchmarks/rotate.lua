-- wrk script: requests cycle through the paths in BENCH_PATHS (comma-separated).
local paths = {}
for path in string.gmatch(os.getenv("BENCH_PATHS") or "/health/", "[^,]+") do
  table.insert(paths, path)
end
local sent = 0

request = function()
  sent = sent + 1
  return wrk.format("GET", paths[(sent - 1) % #paths + 1])
end
