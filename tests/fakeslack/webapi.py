"""The fake Slack's Web API methods: one function per method, over the FakeSlack's state.

fakeslack.py's HTTP handler decodes the request, applies faults and auth, then calls
call(fs, method, params). Each function takes (fs, params) with fs.lock held and returns the
JSON answer as a dict, or raises ApiError(code). Calls nothing outside this package.
"""
import base64
import copy
import json
import time

METHODS = {}


class ApiError(Exception):
    """A Slack error answer: {"ok": false, "error": code}."""

    def __init__(self, code, **extra):
        super().__init__(code)
        self.code = code
        self.extra = extra


def method(name):
    def register(fn):
        METHODS[name] = fn
        return fn

    return register


def call(fs, name, params):
    fn = METHODS.get(name)
    if fn is None:
        return {"ok": False, "error": "unknown_method"}
    try:
        with fs.lock:
            return fn(fs, params)
    except ApiError as e:
        answer = {"ok": False, "error": e.code}
        answer.update(e.extra)
        return answer


# --- argument helpers ---------------------------------------------------------------------
def arg(params, key, required=True):
    value = params.get(key)
    if isinstance(value, str):
        value = value.strip()
    if value in (None, "") and required:
        raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] missing required field: " + key]})
    return value


def int_arg(params, key, default):
    value = params.get(key)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] %s must be an integer" % key]})


def bool_arg(params, key, default=False):
    value = params.get(key)
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "yes")


def channel_of(fs, params, key="channel", need_member=True):
    cid = arg(params, key)
    ch = fs.channels.get(cid)
    if ch is None:
        raise ApiError("channel_not_found")
    if need_member and fs.identity["user_id"] not in ch["members"]:
        raise ApiError("not_in_channel")
    return ch


def message_of(fs, channel_id, ts):
    msg = fs._by_ts.get(channel_id, {}).get(ts)
    if msg is None:
        raise ApiError("message_not_found")
    return msg


# --- cursors: opaque base64 text ending in "=", carrying the offset and the page number ---
def make_cursor(scope, offset, page):
    raw = "%s|%d|%d|" % (scope, offset, page)
    while len(raw) % 3 == 0:  # keep base64 padding so cursors end in "=", as Slack's do
        raw += "~"
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")


def read_cursor(cursor, scope):
    """(offset, page) of a cursor this fake issued for scope; (0, 0) for no cursor."""
    if cursor in (None, ""):
        return 0, 0
    try:
        parts = base64.b64decode(cursor.encode("ascii"), validate=True).decode("utf-8").split("|")
        if parts[0] != scope:
            raise ValueError(scope)
        return int(parts[1]), int(parts[2])
    except (ValueError, IndexError, UnicodeError):
        raise ApiError("invalid_cursor")


def page_index(params):
    """The page number a request asks for, from its cursor (0 without one; -1 if unreadable)."""
    cursor = params.get("cursor")
    if cursor in (None, ""):
        return 0
    try:
        parts = base64.b64decode(str(cursor).encode("ascii"), validate=True).decode("utf-8").split("|")
        return int(parts[2])
    except (ValueError, IndexError, UnicodeError):
        return -1


def paginate(items, params, scope, default_limit, max_page):
    """(page items, next_cursor or "") for a list, with real cursor pagination."""
    offset, page = read_cursor(params.get("cursor"), scope)
    limit = int_arg(params, "limit", default_limit)
    if limit <= 0:
        limit = default_limit
    size = max(1, min(limit, max_page))
    chunk = items[offset:offset + size]
    nxt = offset + size
    return chunk, (make_cursor(scope, nxt, page + 1) if nxt < len(items) else "")


# --- identity and directory ---------------------------------------------------------------
@method("auth.test")
def auth_test(fs, params):
    return dict(fs.identity)


@method("apps.connections.open")
def apps_connections_open(fs, params):
    return {"ok": True, "url": fs._issue_ws_url()}


@method("users.info")
def users_info(fs, params):
    user = fs.users.get(arg(params, "user"))
    if user is None:
        raise ApiError("user_not_found")
    return {"ok": True, "user": copy.deepcopy(user)}


@method("users.list")
def users_list(fs, params):
    members = [copy.deepcopy(u) for u in fs.users.values()]
    chunk, nxt = paginate(members, params, "users", 200, 1000)
    return {"ok": True, "members": chunk, "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": nxt}}


@method("bots.info")
def bots_info(fs, params):
    bot = fs.bots.get(arg(params, "bot"))
    if bot is None:
        raise ApiError("bot_not_found")
    return {"ok": True, "bot": copy.deepcopy(bot)}


@method("usergroups.users.list")
def usergroups_users_list(fs, params):
    group = fs.usergroups.get(arg(params, "usergroup"))
    if group is None:
        raise ApiError("no_such_subteam")
    return {"ok": True, "users": list(group)}


@method("usergroups.list")
def usergroups_list(fs, params):
    groups = [{"id": gid, "handle": fs.usergroup_handles.get(gid, gid.lower()), "name": gid,
               "user_count": len(members)} for gid, members in sorted(fs.usergroups.items())]
    return {"ok": True, "usergroups": groups}


@method("conversations.info")
def conversations_info(fs, params):
    ch = channel_of(fs, params, need_member=False)
    return {"ok": True, "channel": fs._channel_object(ch)}


@method("conversations.members")
def conversations_members(fs, params):
    ch = channel_of(fs, params, need_member=False)
    chunk, nxt = paginate(list(ch["members"]), params, "members:" + ch["id"], 100, 1000)
    return {"ok": True, "members": chunk, "response_metadata": {"next_cursor": nxt}}


# --- reading a thread ---------------------------------------------------------------------
@method("conversations.replies")
def conversations_replies(fs, params):
    ch = channel_of(fs, params)
    ts = str(arg(params, "ts"))
    thread = fs._thread(ch["id"], ts)
    if thread is None:
        raise ApiError("thread_not_found")
    parent = thread[0]
    scope = "replies:%s:%s" % (ch["id"], parent["ts"])
    offset, page = read_cursor(params.get("cursor"), scope)
    limit = int_arg(params, "limit", fs.max_page)
    if limit <= 0:
        limit = fs.max_page
    size = max(1, min(limit, fs.max_page))
    # offset counts positions in thread (parent at 0). A repeated parent takes one slot.
    if offset == 0:
        chunk = thread[:size]
    elif fs.repeat_parent:
        chunk = [parent] + thread[offset:offset + max(1, size - 1)]
    else:
        chunk = thread[offset:offset + size]
    consumed = len(chunk) if (offset == 0 or not fs.repeat_parent) else len(chunk) - 1
    nxt = offset + consumed
    has_more = nxt < len(thread)
    answer = {"ok": True, "messages": [copy.deepcopy(m) for m in chunk], "has_more": has_more,
              "response_metadata": {"next_cursor": make_cursor(scope, nxt, page + 1) if has_more else ""}}
    return answer


@method("conversations.history")
def conversations_history(fs, params):
    """Top-level messages (and thread broadcasts) newest first, between oldest and latest, with
    cursor paging; fs.history_max_page caps a page (15 for the non-Marketplace regime)."""
    ch = channel_of(fs, params)
    oldest = params.get("oldest")
    latest = params.get("latest")
    inclusive = bool_arg(params, "inclusive")
    lo = fs_ts_key(oldest) if oldest not in (None, "") else None
    hi = fs_ts_key(latest) if latest not in (None, "") else None

    def inside(m):
        k = fs_ts_key(m["ts"])
        if lo is not None and (k < lo or (k == lo and not inclusive)):
            return False
        if hi is not None and (k > hi or (k == hi and not inclusive)):
            return False
        return True

    top = [m for m in reversed(fs.messages[ch["id"]])
           if (not m.get("thread_ts") or m["thread_ts"] == m["ts"] or m.get("subtype") == "thread_broadcast")
           and inside(m)]
    scope = "history:%s:%s:%s" % (ch["id"], oldest or "", latest or "")
    chunk, nxt = paginate(top, params, scope, 100, fs.history_max_page)
    return {"ok": True, "messages": [copy.deepcopy(m) for m in chunk], "has_more": bool(nxt),
            "pin_count": len(fs.pins.get(ch["id"], ())), "response_metadata": {"next_cursor": nxt}}


@method("pins.list")
def pins_list(fs, params):
    ch = channel_of(fs, params)
    items = []
    for ts in fs.pins.get(ch["id"], ()):
        msg = fs._by_ts[ch["id"]].get(ts)
        if msg is not None:
            items.append({"type": "message", "channel": ch["id"], "created": 1700000000,
                          "created_by": "U0ALICE", "message": copy.deepcopy(msg)})
    return {"ok": True, "items": items}


def fs_ts_key(ts):
    sec, _, frac = str(ts).partition(".")
    return int(sec) * 1000000 + int((frac + "000000")[:6])


# --- writing ------------------------------------------------------------------------------
@method("chat.postMessage")
def chat_post_message(fs, params):
    ch = channel_of(fs, params)
    text = params.get("text") or params.get("markdown_text")
    blocks = params.get("blocks")
    attachments = params.get("attachments")
    if not text and not blocks and not attachments:
        raise ApiError("no_text")
    msg = {"type": "message", "user": fs.identity["user_id"], "bot_id": fs.identity["bot_id"],
           "app_id": fs.app_id, "text": text or "", "team": fs.identity["team_id"]}
    if blocks:
        msg["blocks"] = _json_value(blocks, "invalid_blocks")
    if attachments:
        msg["attachments"] = _json_value(attachments, "invalid_attachments")
    thread_ts = params.get("thread_ts")
    if thread_ts not in (None, ""):
        msg["thread_ts"] = str(thread_ts)
    stored = fs._append_message(ch["id"], msg)
    fs._posts.append({"channel": ch["id"], "thread_ts": stored.get("thread_ts"), "ts": stored["ts"],
                      "text": stored["text"], "blocks": stored.get("blocks"), "params": dict(params),
                      "time": time.monotonic()})
    return {"ok": True, "channel": ch["id"], "ts": stored["ts"], "message": copy.deepcopy(stored)}


@method("chat.update")
def chat_update(fs, params):
    ch = channel_of(fs, params)
    msg = message_of(fs, ch["id"], str(arg(params, "ts")))
    if msg.get("bot_id") != fs.identity["bot_id"]:
        raise ApiError("cant_update_message")
    if "text" in params:
        msg["text"] = params.get("text") or ""
    if params.get("blocks"):
        msg["blocks"] = _json_value(params["blocks"], "invalid_blocks")
    msg["edited"] = {"user": fs.identity["user_id"], "ts": fs._next_ts()}
    fs.updates.append({"channel": ch["id"], "ts": msg["ts"], "text": msg.get("text"),
                       "params": dict(params), "time": time.monotonic()})
    return {"ok": True, "channel": ch["id"], "ts": msg["ts"], "text": msg.get("text", ""),
            "message": copy.deepcopy(msg)}


@method("chat.getPermalink")
def chat_get_permalink(fs, params):
    ch = channel_of(fs, params, need_member=False)
    msg = message_of(fs, ch["id"], str(arg(params, "message_ts")))
    link = "%sarchives/%s/p%s" % (fs.identity["url"], ch["id"], msg["ts"].replace(".", ""))
    if msg.get("thread_ts") and msg["thread_ts"] != msg["ts"]:
        link += "?thread_ts=%s&cid=%s" % (msg["thread_ts"], ch["id"])
    return {"ok": True, "channel": ch["id"], "permalink": link}


def _reaction(fs, params, add):
    ch = channel_of(fs, params)
    ts = str(arg(params, "timestamp"))
    name = str(arg(params, "name")).strip(":")
    msg = message_of(fs, ch["id"], ts)
    me = fs.identity["user_id"]
    reactions = msg.setdefault("reactions", [])
    entry = next((r for r in reactions if r["name"] == name), None)
    if add:
        if entry and me in entry["users"]:
            raise ApiError("already_reacted")
        if entry is None:
            entry = {"name": name, "users": [], "count": 0}
            reactions.append(entry)
        entry["users"].append(me)
    else:
        if entry is None or me not in entry["users"]:
            raise ApiError("no_reaction")
        entry["users"].remove(me)
        if not entry["users"]:
            reactions.remove(entry)
    if entry in reactions:
        entry["count"] = len(entry["users"])
    if not reactions:
        del msg["reactions"]
    fs.reactions.append({"action": "add" if add else "remove", "channel": ch["id"], "ts": ts,
                         "name": name, "time": time.monotonic()})
    return {"ok": True}


@method("reactions.add")
def reactions_add(fs, params):
    return _reaction(fs, params, True)


@method("reactions.remove")
def reactions_remove(fs, params):
    return _reaction(fs, params, False)


# --- files --------------------------------------------------------------------------------
@method("files.info")
def files_info(fs, params):
    entry = fs.files.get(arg(params, "file"))
    if entry is None:
        raise ApiError("file_not_found")
    return {"ok": True, "file": copy.deepcopy(entry["obj"])}


@method("files.getUploadURLExternal")
def files_get_upload_url_external(fs, params):
    filename = arg(params, "filename")
    length = int_arg(params, "length", None)
    if length is None:
        raise ApiError("invalid_arguments")
    if length <= 0:
        raise ApiError("missing_argument")
    fs._upload_counter += 1
    file_id = "F0UP%05d" % fs._upload_counter
    fs.pending_uploads[file_id] = {"id": file_id, "filename": str(filename), "length": length,
                                   "alt_txt": params.get("alt_txt"), "snippet_type": params.get("snippet_type"),
                                   "bytes": None, "uploads": 0, "completed": False}
    return {"ok": True, "upload_url": "%supload/%s" % (fs.base_url, file_id), "file_id": file_id}


@method("files.completeUploadExternal")
def files_complete_upload_external(fs, params):
    files = _json_value(arg(params, "files"), "invalid_arguments")
    if not isinstance(files, list) or not files:
        raise ApiError("invalid_arguments")
    channel_id = params.get("channel_id") or None
    if not channel_id and params.get("channels"):
        channel_id = str(params["channels"]).split(",")[0].strip()
    if channel_id:
        channel_of(fs, {"channel": channel_id})
    pending = []
    for f in files:
        if not isinstance(f, dict) or not f.get("id"):
            raise ApiError("invalid_arguments")
        up = fs.pending_uploads.get(f["id"])
        if up is None or up["completed"]:
            raise ApiError("file_not_found")
        received = up.get("received")  # (length, first bytes): taken by FakeSlack.upload_sink
        if up["bytes"] is None and received is None:
            fs.upload_errors.append({"file_id": f["id"], "error": "not uploaded"})
            raise ApiError("file_not_found")
        size = received[0] if received is not None else len(up["bytes"])
        if size != up["length"]:
            fs.upload_errors.append({"file_id": f["id"], "error": "uploaded %d bytes, length was %d"
                                     % (size, up["length"])})
            raise ApiError("file_upload_size_mismatch")
        pending.append((up, f.get("title") or up["filename"]))
    thread_ts = params.get("thread_ts") or None
    comment = params.get("initial_comment") or None
    record = {"channel": channel_id, "thread_ts": thread_ts, "initial_comment": comment,
              "blocks": params.get("blocks"), "time": time.monotonic(), "files": [], "ts": None}
    objs = []
    for up, title in pending:
        up["completed"] = True
        received = up.get("received")
        # (a body the sink took is hosted as generated content of its size: see upload_sink.py)
        obj = fs.add_file(up["id"], up["filename"], up["bytes"] if received is None else received[0],
                          _guess_mimetype(up["filename"]), user=fs.identity["user_id"], title=title)
        objs.append(obj)
        record["files"].append({"id": up["id"], "filename": up["filename"], "title": title,
                                "length": up["length"], "bytes": up["bytes"],
                                "head": up["bytes"][:64] if received is None else received[1]})
    if channel_id:
        msg = {"type": "message", "user": fs.identity["user_id"], "bot_id": fs.identity["bot_id"],
               "text": comment or "", "files": [copy.deepcopy(o) for o in objs], "upload": True,
               "display_as_bot": False}
        if thread_ts:
            msg["thread_ts"] = str(thread_ts)
        record["ts"] = fs._append_message(channel_id, msg)["ts"]
    fs.uploads.append(record)
    return {"ok": True, "files": [{"id": o["id"], "title": o["title"]} for o in objs]}


def _guess_mimetype(name):
    lower = name.lower()
    for ext, mime in ((".md", "text/markdown"), (".zip", "application/zip"), (".png", "image/png"),
                      (".txt", "text/plain"), (".json", "application/json")):
        if lower.endswith(ext):
            return mime
    return "application/octet-stream"


def _json_value(value, error):
    """A param that may arrive as a JSON string (form body) or already decoded (JSON body)."""
    if isinstance(value, (list, dict)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        raise ApiError(error)
