-- luacheck: globals love
-- LÖVE 11.4 configuration of the login screen example: no audio (headless machines have no
-- sound device), a save folder of its own.
function love.conf(t)
  t.identity = "auth0-love-demo"
  t.version = "11.4"
  t.window.title = "lua-auth0: login"
  t.window.width, t.window.height = 800, 600
  t.modules.audio, t.modules.sound, t.modules.joystick, t.modules.physics, t.modules.video =
    false, false, false, false, false
end
