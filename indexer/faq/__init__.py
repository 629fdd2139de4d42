"""FAQ: files parsed into intents (files), collections built and calibrated (build), matching (match)."""

from indexer.faq.build import Calibration, FaqImportStats, calibrate_faq, import_faq, question_id
from indexer.faq.files import FAQ_FORMATS, FaqEntry, LabelledQuery, read_faq, read_labelled
from indexer.faq.match import DEFAULT_SEARCH_DEPTH, QUESTION_KIND, IntentScore, match_queries, rank_intents

__all__ = ["DEFAULT_SEARCH_DEPTH", "FAQ_FORMATS", "QUESTION_KIND", "Calibration", "FaqEntry",
           "FaqImportStats", "IntentScore", "LabelledQuery", "calibrate_faq", "import_faq",
           "match_queries", "question_id", "rank_intents", "read_faq", "read_labelled"]
