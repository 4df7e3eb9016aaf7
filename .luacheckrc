std = "min"
max_line_length = 140
files["spec/**/*.lua"] = { std = "+busted" }
files["lua/auth0/emulator/nginx.lua"] = { read_globals = { "ngx" } }
files["lua/auth0/transport/ngx.lua"] = { read_globals = { "ngx" } }
files["examples/openresty/**/*.lua"] = { read_globals = { "ngx" } }
exclude_files = { "build/**" }
