-- luarocks config for building without the network (LUAROCKS_CONFIG=rockspec/luarocks-offline.lua):
-- lua-cjson comes from Debian's lua-cjson package.
rocks_servers = {}
rocks_provided = { ["lua-cjson"] = "2.1.0-1" }
