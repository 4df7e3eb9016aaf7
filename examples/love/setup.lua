--- The emulator's side of the demo: the player, whose account requires MFA (app, push or SMS) and has nothing
-- enrolled yet (so the first login asks to enroll an authenticator app), and push answers
-- polled every second. Used by main.lua (its own emulator) and drive.lua (a shared one).
-- @return the player's user_id
return function(ctl, email)
  local user = assert(ctl:post("users", { connection = "email", email = email, mfa = { "otp", "push-notification", "phone" } }))
  assert(ctl:post("mfa", { poll_min_interval = 1 }))
  return user.user_id
end
