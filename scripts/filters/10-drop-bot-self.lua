-- Drops this bot's own messages and uploads (its replies, progress messages, earlier reports), so a
-- second `autopsy this` does not report on the first. The thread's parent is always kept, even when
-- the bot posted it (`incident start` does). Run by lib/filters.lua; env.bot comes from auth.test.
-- To keep the bot's messages, delete this file and send SIGHUP.
return {
  name = "10-drop-bot-self",
  description = "Drops this bot's own messages and uploads.",
  each = function(entry, env)
    local me = env.bot
    local m = entry.raw or {}
    if entry.ts == env.thread_ts then return nil end
    if me.user_id and m.user == me.user_id then return "posted by this bot" end
    if me.bot_id and m.bot_id == me.bot_id then return "posted by this bot" end
    return nil
  end,
}
