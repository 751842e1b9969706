"""invite-edge: the referral-link edge for cTrader Invite affiliate programmes."""

__all__ = ["__version__"]
__version__ = "0.1.0"
