"""firstvalue: onboarding outcomes tracked to first value. The ``firstvalue`` CLI lives here;
the services and the domain core are the ``services`` and ``shared`` packages."""

__version__ = "0.1.0"
