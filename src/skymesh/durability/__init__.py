"""Durability maths: a Monte-Carlo model of node failures and repair, and closed forms. Pure."""
