-- bench:storm's warm load for wrk: each connection asks for the warm image's manifest (by tag, as
-- an OCI manifest) and its smallest layer in turn, pausing between requests, so the load is modest
-- and steady rather than as fast as the server goes. Arguments after `--`: the manifest's path,
-- the blob's path, the pause in milliseconds. The summary line is wrk-report.lua's.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "wrk-report.lua")

local manifest, blob, pause
local accept = { Accept = "application/vnd.oci.image.manifest.v1+json" }
local n = 0

init = function(args)
  manifest, blob, pause = args[1], args[2], tonumber(args[3])
end

request = function()
  n = n + 1
  if n % 2 == 1 then
    return wrk.format("GET", manifest, accept)
  end
  return wrk.format("GET", blob)
end

delay = function()
  return pause
end
