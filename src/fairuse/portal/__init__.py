"""``fairuse portal``: the customer usage portal (standing, history, notices, prior notice)."""
