"""The demos, in one place: ``paired`` trains STPN and the same model without prompts side by side
for any task that has a demo module (``stpn.<task>.demo``, registered under the ``stpn.demos``
entry points with its short name: det, vis, sot), and ``features`` times feature extraction.
They sit above the tasks and the engine: nothing below imports them."""
