"""FakeWhatsApp: Meta's WhatsApp Cloud API as far as sending messages goes.

Shapes from Meta's public references: "Cloud API > Reference > Messages" (POST
/{Version}/{Phone-Number-ID}/messages with `Authorization: Bearer`, body `messaging_product:
"whatsapp"`, `recipient_type`, `to`, `type: "template"` with `template.name`,
`template.language.code`, `template.components[{type: "body", parameters: [{type: "text", text}]}]`,
or `type: "text"` with `text.body`; answer `{messaging_product, contacts[{input, wa_id}],
messages[{id}]}`) and "Cloud API > Support > Error codes" (the error object `{error: {message,
type, code, error_data: {messaging_product, details}, fbtrace_id}}`; codes 132001 template does not
exist in that language, 131026 message undeliverable, 130429 rate limit hit, 190 access token
expired, 100 invalid parameter). Template parameters may not hold new lines, tabs or more than
four consecutive spaces (error 132018 in the same list)."""
import re

from fakehttp import FakeService

PATH = re.compile(r"^/v\d+\.\d+/(\d+)/messages$")


def _error(code, message, details, kind="OAuthException"):
    return {"error": {"message": message, "type": kind, "code": code,
                      "error_data": {"messaging_product": "whatsapp", "details": details},
                      "fbtrace_id": "AbCdEfGh123"}}


class FakeWhatsApp(FakeService):
    def __init__(self, token, phone_number_id, approved=(("outage_update", "en_US"),)):
        super().__init__()
        self.token = token
        self.phone_number_id = phone_number_id
        self.approved = set(approved)
        self.unreachable = set()      # numbers answered with 131026
        self.rate_limited = False     # every send answered with 130429
        self.delivered = []           # (to, body) of accepted messages

    def handle(self, req):
        m = PATH.match(req["path"])
        if req["method"] != "POST" or not m:
            self.problem("unexpected %s %s" % (req["method"], req["path"]))
            return 404, _error(100, "Unsupported request", "unknown path", "GraphMethodException")
        if m.group(1) != self.phone_number_id:
            self.problem("phone number id %s" % m.group(1))
            return 400, _error(100, "Invalid parameter", "unknown phone number id")
        if req["headers"].get("authorization") != "Bearer " + self.token:
            return 401, _error(190, "Error validating access token", "token expired or invalid")
        if not req["headers"].get("content-type", "").startswith("application/json"):
            self.problem("content-type %r" % req["headers"].get("content-type"))
        body = req["json"]
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            self.problem("messaging_product missing: %r" % (body,))
            return 400, _error(100, "Invalid parameter", "messaging_product is required")
        to = body.get("to")
        if not isinstance(to, str) or not re.fullmatch(r"\+?\d{6,15}", to):
            self.problem("to %r" % (to,))
            return 400, _error(100, "Invalid parameter", "to is not a phone number")
        if body.get("recipient_type", "individual") != "individual":
            self.problem("recipient_type %r" % body.get("recipient_type"))
        if body.get("type") == "template":
            t = body.get("template") or {}
            lang = (t.get("language") or {}).get("code")
            comps = t.get("components")
            if not isinstance(t.get("name"), str) or not isinstance(lang, str) or not isinstance(comps, list):
                self.problem("template shape %r" % (t,))
                return 400, _error(100, "Invalid parameter", "template.name, language.code, components")
            for c in comps:
                if c.get("type") != "body" or not isinstance(c.get("parameters"), list):
                    self.problem("component %r" % (c,))
                for p in c.get("parameters") or []:
                    text = p.get("text")
                    if p.get("type") != "text" or not isinstance(text, str) or not text:
                        self.problem("parameter %r" % (p,))
                    elif re.search(r"[\n\t]| {5,}", text):
                        return 400, _error(132018, "There was an issue with the parameters in your template.",
                                           "Param text cannot have new-line/tab characters or more than 4 consecutive spaces")
            if (t["name"], lang) not in self.approved:
                return 404, _error(132001, "Template name does not exist in the translation",
                                   "template name (%s) does not exist in %s" % (t["name"], lang))
        elif body.get("type") == "text":
            if not isinstance((body.get("text") or {}).get("body"), str):
                self.problem("text.body missing")
        else:
            self.problem("type %r" % body.get("type"))
            return 400, _error(100, "Invalid parameter", "type")
        if self.rate_limited:
            return 400, _error(130429, "Rate limit hit", "Cloud API message throughput has been reached.")
        if to in self.unreachable:
            return 400, _error(131026, "Message undeliverable", "Unable to deliver message.")
        with self.lock:
            self.delivered.append((to, body))
            n = len(self.delivered)
        return 200, {"messaging_product": "whatsapp",
                     "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                     "messages": [{"id": "wamid.HBgLMTY%06d" % n}]}
