"""Layer 3: synthetic head-CT studies written as real DICOM files with RSNA-format labels (`writer` and
`plan`, for UIDs, are the modules besides `dicom` that import pydicom: they write the files `dicom` reads).

`phantom.render_study` draws a study in HU with its labels (`hard` adds the hard difficulty's mimics,
thick-slice partial volume, anatomy and noise), `bleeds` owns the bleed shapes, `writer` turns a
slice into a DICOM dataset in one of the RSNA pixel formats, `plan` seeds the data set's variants and
invented PHI, `generate.generate_dataset` writes it all, `preview` draws a montage.
"""
