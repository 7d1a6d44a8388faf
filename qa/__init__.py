"""qa: question-answering search over folders of news articles."""

__version__ = "0.1.0"
