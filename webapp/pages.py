"""HTML pages (placeholder: the visual explorer lands here)."""

from flask import Blueprint

bp = Blueprint("pages", __name__)
