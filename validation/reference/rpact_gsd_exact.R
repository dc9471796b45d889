# Exact (non-simulated) rpact 3.3.4 values that tests/test_gsd.py checks trials/gsd.py against.
# Regenerate with:  Rscript validation/reference/rpact_gsd_exact.R > validation/reference/rpact_gsd_exact.json
# (Debian package r-cran-rpact 3.3.4-1; plain R, no jsonlite, so the JSON is written by hand.)
suppressMessages(library(rpact))
num <- function(x) paste0("[", paste(formatC(as.numeric(x), digits = 12, format = "g"), collapse = ", "), "]")
one <- function(x) formatC(as.numeric(x), digits = 12, format = "g")
ir <- c(0.3333333, 0.6666667, 1)
out <- c()
add <- function(key, val) out <<- c(out, sprintf('  "%s": %s', key, val))

d <- getDesignGroupSequential(kMax = 3, alpha = 0.025, beta = 0.2, typeOfDesign = "asOF", informationRates = ir)
add("asOF_critical", num(d$criticalValues))
add("asOF_alpha_spent", num(d$alphaSpent))
dc <- getDesignCharacteristics(d)
add("asOF_shift", one(dc$shift))
add("asOF_inflation_factor", one(dc$inflationFactor))
add("asOF_rejection_probabilities_at_shift", num(dc$rejectionProbabilities))
add("asOF_average_sample_number_H1", one(dc$averageSampleNumber1))
add("asOF_average_sample_number_H0", one(dc$averageSampleNumber0))

dp <- getDesignGroupSequential(kMax = 3, alpha = 0.025, typeOfDesign = "asP")
add("asP_critical", num(dp$criticalValues))
dP <- getDesignGroupSequential(kMax = 3, alpha = 0.025, typeOfDesign = "P")
add("P_critical", num(dP$criticalValues))
dOF <- getDesignGroupSequential(kMax = 3, alpha = 0.025, typeOfDesign = "OF")
add("OF_critical", num(dOF$criticalValues))
dh <- getDesignGroupSequential(kMax = 3, alpha = 0.025, typeOfDesign = "asHSD", gammaA = -4)
add("asHSD_m4_critical", num(dh$criticalValues))
dk <- getDesignGroupSequential(kMax = 4, alpha = 0.025, typeOfDesign = "asKD", gammaA = 2,
                               informationRates = c(0.2, 0.5, 0.8, 1))
add("asKD_2_unequal_critical", num(dk$criticalValues))

db <- getDesignGroupSequential(kMax = 3, alpha = 0.025, beta = 0.2, typeOfDesign = "asOF",
                               typeBetaSpending = "bsOF")
add("asOF_bsOF_critical", num(db$criticalValues))
add("asOF_bsOF_futility", num(db$futilityBounds))
dbc <- getDesignCharacteristics(db)
add("asOF_bsOF_shift", one(dbc$shift))
add("asOF_bsOF_futility_probabilities", num(dbc$futilityProbabilities))
add("asOF_bsOF_rejection_probabilities", num(dbc$rejectionProbabilities))

pm <- getPowerMeans(d, alternative = 0.3, stDev = 1, maxNumberOfSubjects = 356, normalApproximation = TRUE)
add("powerMeans_z_rejectPerStage", num(pm$rejectPerStage))
add("powerMeans_z_expectedN", one(pm$expectedNumberOfSubjects))

ps <- getPowerSurvival(d, hazardRatio = 0.7, lambda2 = log(2) / 12, directionUpper = FALSE,
                       maxNumberOfEvents = 250, maxNumberOfSubjects = 376, accrualTime = c(0, 24))
add("powerSurvival_rejectPerStage", num(ps$rejectPerStage))
add("powerSurvival_analysisTime", num(ps$analysisTime))
add("powerSurvival_expectedEvents", one(ps$expectedNumberOfEvents))
add("powerSurvival_expectedN", one(ps$expectedNumberOfSubjects))

cat("{\n", paste(out, collapse = ",\n"), "\n}\n", sep = "")
