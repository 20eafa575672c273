"""FakeTeamsWorkflow: a Microsoft Teams Workflows webhook ("When a Teams webhook request is
received" trigger) that posts an Adaptive Card.

Shapes from Microsoft's public references: Teams "Create Incoming Webhooks / Workflows" (Learn:
"Post a workflow when a webhook request is received in Microsoft Teams": the body is a message
`{type: "message", attachments: [{contentType: "application/vnd.microsoft.card.adaptive",
contentUrl: null, content: <card>}]}`, answered `202 Accepted`; the URL's `sig` query parameter is
its secret) and the Adaptive Cards schema (adaptivecards.io: `type: "AdaptiveCard"`, `version`,
`body` of elements such as `TextBlock {text}` and `FactSet {facts[{title, value}]}`, `actions` such
as `Action.OpenUrl {title, url}`). A wrong signature is answered 401 as the trigger does."""
from fakehttp import FakeService

ELEMENTS = {"TextBlock": ("text",), "FactSet": ("facts",), "ColumnSet": ("columns",), "Container": ("items",)}


class FakeTeamsWorkflow(FakeService):
    def __init__(self, sig):
        super().__init__()
        self.sig = sig
        self.cards = []

    @property
    def webhook_url(self):
        return self.url + "workflows/4f1c/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=" + self.sig

    def handle(self, req):
        if req["method"] != "POST" or not req["path"].endswith("/paths/invoke"):
            self.problem("unexpected %s %s" % (req["method"], req["path"]))
            return 404, None
        if req["query"].get("sig") != [self.sig]:
            return 401, {"error": {"code": "DirectApiAuthorizationRequired", "message": "signature mismatch"}}
        body = req["json"]
        if not isinstance(body, dict) or body.get("type") != "message":
            self.problem("not a message: %r" % (body,))
            return 400, {"error": {"code": "InvalidRequestContent", "message": "type"}}
        atts = body.get("attachments")
        if not isinstance(atts, list) or len(atts) != 1:
            self.problem("attachments %r" % (atts,))
            return 400, {"error": {"code": "InvalidRequestContent", "message": "attachments"}}
        att = atts[0]
        if att.get("contentType") != "application/vnd.microsoft.card.adaptive" or "contentUrl" not in att:
            self.problem("attachment %r" % ({k: v for k, v in att.items() if k != "content"},))
        card = att.get("content") or {}
        if card.get("type") != "AdaptiveCard" or not isinstance(card.get("version"), str):
            self.problem("card %r" % (card,))
        for el in card.get("body") or []:
            need = ELEMENTS.get(el.get("type"))
            if need is None or any(k not in el for k in need):
                self.problem("element %r" % (el,))
            for fact in el.get("facts") or []:
                if not isinstance(fact.get("title"), str) or not isinstance(fact.get("value"), str):
                    self.problem("fact %r" % (fact,))
        for a in card.get("actions") or []:
            if a.get("type") != "Action.OpenUrl" or not a.get("url") or not a.get("title"):
                self.problem("action %r" % (a,))
        with self.lock:
            self.cards.append(card)
        return 202, None
