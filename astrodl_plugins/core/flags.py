# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The bits of the ``flag`` column, defined once for every estimator.

`SourceFlags` is an `astropy.nddata.bitmask.BitFlagNameMap`, so a flag
column can be tested and built by name with astropy's bitmask tools::

    >>> from astropy.nddata.bitmask import bitfield_to_boolean_mask
    >>> from astrodl_plugins.core.flags import SourceFlags
    >>> int(SourceFlags.EDGE)
    2
    >>> bitfield_to_boolean_mask([0, 2, 6], ignore_flags='~EDGE',
    ...                          flag_name_map=SourceFlags).tolist()
    [False, True, True]

Estimators declare the bits they can set (``flag_names``); the table meta
``flags`` maps each of them to its meaning (`flag_descriptions`).
"""

from astropy.nddata.bitmask import BitFlagNameMap

__all__ = ['SourceFlags', 'FLAG_NAMES', 'flag_descriptions']


class SourceFlags(BitFlagNameMap):
    """Bits of the ``flag`` column of every estimator's table."""

    MASKED = 1, ('stamp touches masked or non-finite pixels; a spectrum '
                 'or light curve has more than a fifth of its values '
                 'masked')
    EDGE = 2, 'stamp cut by the image edge'
    OUT_OF_RANGE = 4, 'source outside the range the model was trained on'
    UNUSABLE = 8, ('no usable pixels near the source, or an output that is '
                   'not finite: outputs are NaN (or not finite)')
    NO_CENTRE = 16, ('no centre detected in the segment: one child, at the '
                     'segment centroid')
    UNFAMILIAR = 32, ('the stamp (a light curve: the candidate\'s views) '
                      'is unlike the simulations the model was '
                      'trained on (ood_score > 1)')
    PSF_UNCERTAIN = 64, ('the PSF FWHM was estimated from too few point '
                         'sources or without a clear stellar locus')
    NOT_LENS = 128, ('the lens finder run alongside gives p_lens below '
                     'min_p_lens: lens parameters are not meaningful')
    PERIOD_ALIAS = 256, ('every transit with data has the same parity '
                         '(the others fall in gaps), or the odd and even '
                         'transits differ as a doubled period\'s do: the '
                         'period may be twice the one given, or the '
                         'transits belong to different bodies')
    LOW_SNR = 512, ('S/N below the lowest at which the vetter separates '
                    'planets from false positives reliably (held-out AUC '
                    'of at least 0.95, the model card\'s table by S/N): '
                    'the class is uncertain')
    MULTIMODAL = 1024, ('the redshift posterior has more than a fifth of its '
                        'mass away from its main peak (p_multimodal > 0.2): '
                        'z may be a wrong peak')
    PARTIAL_COVERAGE = 2048, ('the spectrum covers less than 90 % of the '
                              'wavelength range the model was trained on')


#: Every flag name, in bit order.
FLAG_NAMES = ('MASKED', 'EDGE', 'OUT_OF_RANGE', 'UNUSABLE', 'NO_CENTRE',
              'UNFAMILIAR', 'PSF_UNCERTAIN', 'NOT_LENS', 'PERIOD_ALIAS',
              'LOW_SNR', 'MULTIMODAL', 'PARTIAL_COVERAGE')


def flag_descriptions(names=FLAG_NAMES):
    """
    ``{bit: meaning}`` of the named flags (the table meta ``flags``).

    Parameters
    ----------
    names : sequence of str, optional
        Flag names of `SourceFlags`.

    Returns
    -------
    descriptions : dict
        Bit value (`int`) to description, in bit order.
    """
    bits = {int(getattr(SourceFlags, name)): getattr(SourceFlags, name).__doc__
            for name in names}
    return dict(sorted(bits.items()))
