# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
sha256 of the shipped presets' files, kept in the code (generated).

A preset's ``manifest.json`` sits next to its weights, so it shows that
they are intact, not that they are the ones the package shipped: the model
store checks the shipped presets against these digests as well. Generated
by `astrodl_plugins.core.store.update_preset_hashes`; do not edit by hand.
"""

#: Shipped preset name -> {file name -> sha256}.
PRESET_SHA256 = {
    'deblender': {
        'config.json':
            '7ae98606849465f21dd3b24bc5705e35a1e92b5d13f7570bcb558a32f12a41a0',
        'detector.keras':
            '68fac6472c3cf705fb50008ab9375cae40bcbb780aa3b5a29375fa745c05e458',
        'model.keras':
            '83693c202afcbfec7b0ae50a1b5ac8b97ca0bfafc97a8c4a25ee1cf15f1921bc',
    },
    'galaxy-morphology': {
        'config.json':
            '6ba31196bc0ee6dd14033f1c99e76a8a5e4f5a01aed6ad8064a1464c430f4a4a',
        'model.keras':
            '023283d3548546205953375c7982811d65cf03fdb9cb52f994085fed689facf9',
    },
    'galaxy-structure': {
        'config.json':
            '3770b0593bfd19a563ac6513cb848fbbeaf1638138c5f027441149954529257b',
        'model.keras':
            '7b2ca2763354cdb26324cdfc165d97bc237f1b3b2f7a44fc6b1890a0341d8031',
    },
    'lens-finder': {
        'config.json':
            '65679a6f8dc7f8fa5b841f5753469069166c5aac069aafb2aae6440aeb1f6751',
        'model.keras':
            'a99dc17a744404bcb95572b6ff8b0d703d284f50934e53110057ae329528cb06',
    },
    'lens-parameters': {
        'config.json':
            'ebb949e3d28795bfeb6bae82fe770db12103a74dd1790a6bc384161bff6671b4',
        'model.keras':
            'c270458a943a26d38bf5c4e1399e2cb713f89f22947425dfe7cc61a7431c50ef',
    },
    'spec-redshift': {
        'config.json':
            'a376e919a904c77d5d5dced3204c544b5515f209e0da498c3486cd267e5f2bff',
        'model.keras':
            '6eee77bcbe84a36e31933c7e5e4ccd2472846deea4418a5527eb6420f0a3219f',
    },
    'star-galaxy': {
        'config.json':
            'e27812e9f9a36d985d2bcade60228da578bd697b8c08100d1e5517c717435622',
        'model.keras':
            'c616e1de664ed92cc1100550c83c768548ca6adad6e534973683b5c785adb7bd',
    },
    'transit': {
        'config.json':
            '52b3dd2c7b85cd32938f9c6bfaa57d534314ef9ba76e63409a23932141c28895',
        'model.keras':
            'bead61a7d2d650a36e8414d129cfe7285558eecce304808b320e782229fcefcc',
    },
}
