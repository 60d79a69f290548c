"""The platform's own tables: terminals, orders, their payments and the audit trail of every order change.

Reference-HIS tables live in ``central.his.tables`` (prefixed ``his_``); a real hospital keeps those in its own
HIS, so nothing here refers to them by foreign key.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from central.db import Base, UTCDateTime, utcnow


class OrderStatus:
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    PAID = "PAID"
    FULFILLED = "FULFILLED"
    CLOSED = "CLOSED"
    CANCEL_PENDING = "CANCEL_PENDING"  # the patient asked to cancel (退号); the HIS has not confirmed yet
    REFUND_PENDING = "REFUND_PENDING"
    REFUNDED = "REFUNDED"

    ALL = (AWAITING_PAYMENT, PAID, FULFILLED, CLOSED, CANCEL_PENDING, REFUND_PENDING, REFUNDED)
    FINAL = (FULFILLED, CLOSED, REFUNDED)


class Terminal(Base):
    """A kiosk allowed to call the API. Only a hash of its secret is kept: a leaked database opens no kiosk."""

    __tablename__ = "terminals"

    terminal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    secret_sha256: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    keyed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Order(Base):
    """A registration order or an outpatient bill order (``kind``). Department, doctor and slot are copied in
    when the order is made, so the order still reads correctly if the HIS renames a department or the schedule
    changes afterwards. For a bill, ``his_lock_id`` holds the bill number and the slot columns the bill's date."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("terminal_id", "idempotency_key"),
                      Index("ix_orders_status_expires", "status", "expires_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_no: Mapped[str] = mapped_column(String(32), unique=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32), default="registration")
    status: Mapped[str] = mapped_column(String(32), default=OrderStatus.AWAITING_PAYMENT)
    amount_fen: Mapped[int] = mapped_column(Integer)
    patient_id: Mapped[str] = mapped_column(String(32))
    patient_name_masked: Mapped[str] = mapped_column(String(64))
    dept_code: Mapped[str] = mapped_column(String(32))
    dept_name: Mapped[str] = mapped_column(String(100))
    dept_location: Mapped[str] = mapped_column(String(200))
    doctor_code: Mapped[str] = mapped_column(String(32))
    doctor_name: Mapped[str] = mapped_column(String(64))
    doctor_title: Mapped[str] = mapped_column(String(32))
    slot_id: Mapped[int] = mapped_column(Integer)
    slot_date: Mapped[date] = mapped_column(Date)
    slot_start: Mapped[str] = mapped_column(String(5))
    slot_end: Mapped[str] = mapped_column(String(5))
    his_lock_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_fen: Mapped[int | None] = mapped_column(Integer)
    queue_no: Mapped[int | None] = mapped_column(Integer)
    visit_code: Mapped[str | None] = mapped_column(String(32))
    registration_location: Mapped[str | None] = mapped_column(String(200))
    refund_no: Mapped[str | None] = mapped_column(String(64))
    refund_status: Mapped[str | None] = mapped_column(String(32))
    insurance_fen: Mapped[int] = mapped_column(Integer, default=0)  # settled by medical insurance, not the patient
    payment_method: Mapped[str | None] = mapped_column(String(32))  # what the patient chose: one per order
    paid_trade_no: Mapped[str | None] = mapped_column(String(32))  # the self-pay trade that counts

    payments: Mapped[list[Payment]] = relationship(back_populates="order", lazy="selectin", order_by="Payment.id")
    items: Mapped[list[OrderItem]] = relationship(lazy="selectin", order_by="OrderItem.id")

    @property
    def self_pay_fen(self) -> int:
        """What the patient pays through a channel: the bill less the insurance part."""
        return self.amount_fen - self.insurance_fen

    @property
    def insurance_payment(self) -> Payment | None:
        return next((p for p in self.payments if p.part == PaymentPart.INSURANCE), None)

    @property
    def self_payments(self) -> list[Payment]:
        return [p for p in self.payments if p.part == PaymentPart.SELF]

    @property
    def payment(self) -> Payment | None:
        """The self-pay trade that counts: the one that paid the order if any, else the newest."""
        trades = self.self_payments
        paid = [p for p in trades if p.out_trade_no == self.paid_trade_no]
        return paid[0] if paid else (trades[-1] if trades else None)


class PaymentPart:
    SELF = "self"  # paid by the patient through a channel (QR, payment code, bank card)
    INSURANCE = "insurance"  # settled by medical insurance (fund and personal account)


class Payment(Base):
    """One trade that settles (part of) an order. ``out_trade_no`` is derived from the order number and the
    method, so a retried create after an unknown outcome addresses the same trade rather than opening another."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    part: Mapped[str] = mapped_column(String(16), default=PaymentPart.SELF)
    amount_fen: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text, default="")  # JSON: insurance split, masked card number ...
    channel: Mapped[str] = mapped_column(String(32))
    out_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(127))
    code_url: Mapped[str | None] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(16), default="NOTPAY")
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    success_time: Mapped[str | None] = mapped_column(String(40))
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    queried_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    order: Mapped[Order] = relationship(back_populates="payments")


class OrderItem(Base):
    """One item of a bill order, copied from the HIS when the order was made: what was paid for, where the
    patient goes for it, and whether it was given back (退费 of items not yet dispensed or performed)."""

    __tablename__ = "order_items"
    __table_args__ = (UniqueConstraint("order_id", "item_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    item_id: Mapped[str] = mapped_column(String(32))  # the HIS's detail serial
    category: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    insurance_class: Mapped[str] = mapped_column(String(1))
    amount_fen: Mapped[int] = mapped_column(Integer)
    place: Mapped[str] = mapped_column(String(200))
    place_en: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="DUE")  # DUE PAID REFUND_PENDING REFUNDED
    refund_no: Mapped[str | None] = mapped_column(String(48))  # the refund batch it went back in


class OrderEvent(Base):
    """Who changed an order, when, and from what to what: support staff and reconciliation read this first."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


class KioskMessage(Base):
    """One message from a kiosk's outbox, stored once per (terminal, idempotency key)."""

    __tablename__ = "kiosk_messages"
    __table_args__ = (UniqueConstraint("terminal_id", "idempotency_key"),
                      Index("ix_kiosk_messages_kind_id", "kind", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON (sorted keys)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())  # on the kiosk, when it was enqueued
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    copies: Mapped[int] = mapped_column(Integer, default=1)  # how often it arrived: retries seen, for support
