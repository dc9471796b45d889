# Two-sided group-sequential boundaries from rpact 3.3.4 that tests/test_gsd_yaml.py checks
# trials/gsd against (symmetric boundaries, alpha = 0.05 two-sided, three equally spaced looks).
# Regenerate with:  Rscript validation/reference/rpact_gsd_two_sided.R > validation/reference/rpact_gsd_two_sided.json
# (Debian package r-cran-rpact 3.3.4-1; plain R, no jsonlite, so the JSON is written by hand.)
suppressMessages(library(rpact))
num <- function(x) paste0("[", paste(formatC(as.numeric(x), digits = 12, format = "g"), collapse = ", "), "]")
out <- c()
add <- function(key, val) out <<- c(out, sprintf('  "%s": %s', key, val))
for (kind in c("asOF", "asP", "OF", "P")) {
  d <- getDesignGroupSequential(kMax = 3, alpha = 0.05, sided = 2, typeOfDesign = kind)
  add(paste0(kind, "_critical"), num(d$criticalValues))
  add(paste0(kind, "_alpha_spent"), num(d$alphaSpent))
}
d <- getDesignGroupSequential(kMax = 3, alpha = 0.05, sided = 2, typeOfDesign = "asHSD", gammaA = -4)
add("asHSD_m4_critical", num(d$criticalValues))
d <- getDesignGroupSequential(kMax = 4, alpha = 0.05, sided = 2, typeOfDesign = "asKD", gammaA = 2,
                              informationRates = c(0.2, 0.5, 0.8, 1))
add("asKD_2_unequal_critical", num(d$criticalValues))
cat("{\n", paste(out, collapse = ",\n"), "\n}\n", sep = "")
