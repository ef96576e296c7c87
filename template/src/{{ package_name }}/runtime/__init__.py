"""loopsafe's runtime: the template's code, replaced by `copier update`; don't edit it.

Your code goes beside it: routes.py, settings.py, your own modules and tests.
"""
