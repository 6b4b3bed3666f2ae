"""SIP dialogs (RFC 3261 §12), sans-I/O: identifiers, route set, CSeq, remote target refresh."""

from __future__ import annotations

from dataclasses import dataclass, field

from tgsip.sip.headers import NameAddr
from tgsip.sip.message import Request, Response, new_request

__all__ = ["Dialog", "DialogError"]


class DialogError(ValueError):
    """A request cannot be used in this dialog; ``status`` is the response to send."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(eq=False)
class Dialog:
    """State of one dialog (§12.1 creation, §12.2 requests within it).

    ``route_set`` holds Route values in the order they go into requests; ``remote_target`` is
    the peer's Contact URI text; ``local_cseq`` is the last CSeq we used, ``remote_cseq`` the
    last one we accepted (None until the peer sends a request).
    """

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: str
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 1
    remote_cseq: int | None = None
    confirmed: bool = True

    @property
    def key(self) -> tuple[str, str, str]:
        """Dialog ID (§12): Call-ID, local tag, remote tag."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uas(cls, request: Request, local_tag: str) -> Dialog:
        """Dialog created by answering ``request`` with a 2xx (§12.1.1).

        Route set = Record-Route in order; remote target = Contact; remote CSeq = request's.
        """
        contacts = request.contacts or []
        target = str(contacts[0].uri) if contacts else str(request.from_.uri)
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=request.to,
            remote_uri=request.from_,
            remote_target=target,
            route_set=[str(r) for r in request.record_routes],
            local_cseq=0,
            remote_cseq=request.cseq.number,
        )

    @classmethod
    def as_uac(cls, request: Request, response: Response) -> Dialog:
        """Dialog created by a 2xx (or 1xx with To tag) to ``request`` (§12.1.2).

        Route set = Record-Route reversed; remote target = the response's Contact.
        """
        contacts = response.contacts or []
        target = str(contacts[0].uri) if contacts else request.uri
        return cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=request.from_,
            remote_uri=response.to,
            remote_target=target,
            route_set=[str(r) for r in reversed(response.record_routes)],
            local_cseq=request.cseq.number,
        )

    @staticmethod
    def key_of(msg: Request | Response, *, incoming: bool) -> tuple[str, str, str]:
        """The dialog ID a message belongs to, seen from our side.

        ``incoming`` is True for a message we received. Our tag is the To tag of requests we
        receive and of responses we send, the From tag otherwise.
        """
        from_tag = msg.from_.tag or ""
        to_tag = msg.to.tag or ""
        if isinstance(msg, Request) == incoming:
            return (msg.call_id, to_tag, from_tag)
        return (msg.call_id, from_tag, to_tag)

    def on_request(self, request: Request) -> None:
        """Accept an in-dialog request (§12.2.2): CSeq order and target refresh.

        Raises :class:`DialogError` (500) for a CSeq lower than the last one; a re-INVITE or
        UPDATE with a Contact replaces the remote target.
        """
        n = request.cseq.number
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_cseq is not None and n <= self.remote_cseq:
                raise DialogError("CSeq out of order", 500)
            self.remote_cseq = n
        if request.method in ("INVITE", "UPDATE"):
            contacts = request.contacts
            if contacts:
                self.remote_target = str(contacts[0].uri)

    def on_target_refresh_response(self, response: Response) -> None:
        """A 2xx to our re-INVITE/UPDATE refreshes the remote target (§12.2.1.2)."""
        contacts = response.contacts
        if contacts:
            self.remote_target = str(contacts[0].uri)

    def new_request(
        self,
        method: str,
        via_host: str,
        *,
        via_port: int | None = None,
        transport: str = "UDP",
        contact: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        cseq: int | None = None,
        branch: str | None = None,
    ) -> Request:
        """Build an in-dialog request (§12.2.1.1): CSeq incremented except for ACK/CANCEL.

        Request-URI is the remote target and the route set becomes Route headers (loose
        routing, RFC 3261 §16.12; a strict-routing first hop is not supported).
        """
        if cseq is None:
            if method not in ("ACK", "CANCEL"):
                self.local_cseq += 1
            cseq = self.local_cseq
        to = self.remote_uri.with_tag(self.remote_tag) if self.remote_tag else self.remote_uri
        return new_request(
            method,
            self.remote_target,
            self.local_uri,
            to,
            self.call_id,
            cseq,
            via_host,
            from_tag=self.local_tag,  # as UAS, local_uri is the INVITE's To, without our tag
            via_port=via_port,
            transport=transport,
            branch=branch,
            contact=contact,
            routes=self.route_set,
            body=body,
            content_type=content_type,
        )
